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
mod signals;

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
    signals::install();
    match cmd::run(cli.command, cli.quiet, cli.threads) {
        Ok(code) => {
            if let Some(note) = signals::late_note() {
                eprintln!("{note}");
            }
            code
        }
        Err(err) => {
            // A closed stdout (`oss-forge inspect ... | head`) is not a failure.
            if err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            // Stopped by Ctrl-C (or SIGTERM): whatever error the stop surfaced as, say so.
            if let Some((code, message)) = signals::interrupted_message() {
                eprintln!("{message}");
                return ExitCode::from(code);
            }
            eprintln!("error: {}", error_chain(&err));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes joined by `: `, naming each path once: a cause that starts with a
/// path its context already named (`cannot open m: m: no such file`) loses the repeat.
fn error_chain(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for msg in err.chain().map(|e| e.to_string()) {
        let mut msg = msg.as_str();
        if let Some((head, rest)) = msg.split_once(": ")
            && !head.is_empty()
            && !head.contains(' ')
            && out
                .split(|c: char| c.is_whitespace() || c == '`' || c == '(' || c == ')')
                .any(|w| w.trim_end_matches([':', ',', '.']) == head)
        {
            msg = rest;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(msg);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_named_by_the_context_is_not_repeated() {
        let e = anyhow::anyhow!("m/x.safetensors: no such file or directory")
            .context("cannot open m/x.safetensors");
        assert_eq!(
            error_chain(&e),
            "cannot open m/x.safetensors: no such file or directory"
        );
        let e = anyhow::anyhow!("m: tensor `a`: holds NaN").context("converting m to gguf-bf16");
        assert_eq!(
            error_chain(&e),
            "converting m to gguf-bf16: tensor `a`: holds NaN"
        );
        let e = anyhow::anyhow!("other/y: bad").context("cannot open m");
        assert_eq!(error_chain(&e), "cannot open m: other/y: bad");
    }
}
