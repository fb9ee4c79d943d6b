//! Progress display: an indicatif bar (bytes or counted items, rate, ETA) on a terminal; otherwise
//! (CI logs) plain lines, only for phases that take a while: a line every 10% once a phase has run
//! for 2 s, and a closing line for phases over 1 s. Nothing with `--quiet`.

use convert::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

enum Mode {
    Bar(Mutex<Option<ProgressBar>>),
    Lines,
    Quiet,
}

/// Progress on stderr.
pub struct Reporter {
    mode: Mode,
    /// `None`: bytes; `Some("tokens")`: counted items.
    unit: Option<&'static str>,
    label: Mutex<String>,
    total: AtomicU64,
    done: AtomicU64,
    next_line: AtomicU64,
    start: Mutex<Instant>,
}

impl Reporter {
    /// A reporter for the current stderr (a bar on a terminal, lines otherwise) unless `quiet`.
    pub fn new(quiet: bool) -> Reporter {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bar(Mutex::new(None))
        } else {
            Mode::Lines
        };
        Reporter {
            mode,
            unit: None,
            label: Mutex::new(String::new()),
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            next_line: AtomicU64::new(0),
            start: Mutex::new(Instant::now()),
        }
    }
}

impl Reporter {
    /// A reporter counting `unit`s (tokens, weights) instead of bytes.
    pub fn counting(quiet: bool, unit: &'static str) -> Reporter {
        Reporter {
            unit: Some(unit),
            ..Reporter::new(quiet)
        }
    }

    fn amount(&self, n: u64) -> String {
        match self.unit {
            None => convert::units::bytes(n),
            Some(u) => format!("{n} {u}"),
        }
    }

    fn rate(&self, n: u64, secs: f64) -> String {
        match self.unit {
            None => convert::units::rate(n, secs),
            Some(u) => format!("{:.1} {u}/s", n as f64 / secs.max(1e-9)),
        }
    }
}

impl Progress for Reporter {
    fn begin(&self, label: &str, total: u64) {
        *self.label.lock().unwrap() = label.to_string();
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.next_line.store(total / 10, Ordering::Relaxed);
        *self.start.lock().unwrap() = Instant::now();
        match &self.mode {
            Mode::Bar(slot) => {
                let bar = ProgressBar::new(total);
                let template = match self.unit {
                    None => "{msg:>24} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}".to_string(),
                    Some(u) => format!("{{msg:>24}} [{{bar:40}}] {{pos}}/{{len}} {u} {{per_sec}} ETA {{eta}}"),
                };
                bar.set_style(
                    ProgressStyle::with_template(&template)
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                bar.set_message(label.to_string());
                *slot.lock().unwrap() = Some(bar);
            }
            Mode::Lines => {}
            Mode::Quiet => {}
        }
    }

    fn advance(&self, bytes: u64) {
        let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        match &self.mode {
            Mode::Bar(slot) => {
                if let Some(bar) = slot.lock().unwrap().as_ref() {
                    bar.set_position(done);
                }
            }
            Mode::Lines => {
                let total = self.total.load(Ordering::Relaxed).max(1);
                let mark = self.next_line.load(Ordering::Relaxed);
                if done >= mark
                    && mark > 0
                    && self
                        .next_line
                        .compare_exchange(
                            mark,
                            mark + total / 10,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    let secs = self.start.lock().unwrap().elapsed().as_secs_f64();
                    if secs < 2.0 {
                        return;
                    }
                    eprintln!(
                        "{}: {:>3}% ({})",
                        self.label.lock().unwrap(),
                        done * 100 / total,
                        self.rate(done, secs)
                    );
                }
            }
            Mode::Quiet => {}
        }
    }

    fn end(&self) {
        let secs = self.start.lock().unwrap().elapsed().as_secs_f64();
        let done = self.done.load(Ordering::Relaxed);
        match &self.mode {
            Mode::Bar(slot) => {
                if let Some(bar) = slot.lock().unwrap().take() {
                    bar.finish_and_clear();
                }
                eprintln!(
                    "{}: {} in {secs:.1} s ({})",
                    self.label.lock().unwrap(),
                    self.amount(done),
                    self.rate(done, secs)
                );
            }
            Mode::Lines if secs >= 1.0 => eprintln!(
                "{}: done, {} in {secs:.1} s ({})",
                self.label.lock().unwrap(),
                self.amount(done),
                self.rate(done, secs)
            ),
            Mode::Lines => {}
            Mode::Quiet => {}
        }
    }
}
