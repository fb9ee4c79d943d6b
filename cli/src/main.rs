//! `oss-forge`: read, convert, quantize and verify OpenAI's gpt-oss checkpoints.
//!
//! This crate is glue: argument definitions (`args.rs`) and one small module per command
//! (`cmd/`), each building options, calling one library function and rendering its result.
//! Exit codes: 0 success, 1 a verification out of tolerance, 2 an error (unreadable or invalid
//! input, failed write); every error is printed with its whole chain.

/// `println!` that returns an error instead of panicking when stdout is closed (`| head`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?;
    }};
}

/// `print!`, the same way.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)?;
    }};
}

mod args;
mod cmd;
mod progress;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    if let Some(n) = cli.threads
        && let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
    {
        eprintln!("error: --threads {n}: {e}");
        return ExitCode::from(2);
    }
    match cmd::run(cli.command, cli.quiet, cli.threads) {
        Ok(code) => code,
        Err(err) => {
            // A closed stdout (`oss-forge inspect ... | head`) is not a failure.
            if err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
