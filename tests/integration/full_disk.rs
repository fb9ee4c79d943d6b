//! Full disks, simulated with a 1 MiB tmpfs: a conversion that cannot fit is refused before it
//! writes anything; one whose disk fills mid-write (free-space check skipped, as when another
//! process takes the space) names the output, the file, the bytes needed and written, and
//! leaves nothing behind. Mounting needs root (CAP_SYS_ADMIN); where it is refused, the tests
//! say so on stderr and skip.

use crate::util::{TempDir, fixture, oss_forge};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
    _parent: TempDir,
}

impl Tmpfs {
    /// A `size` tmpfs, or `None` (with the reason on stderr) where mounting is not permitted.
    fn mount(tag: &str, size: &str) -> Option<Tmpfs> {
        let parent = TempDir::new(tag);
        let dir = parent.join("fs");
        std::fs::create_dir(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                dir,
                _parent: parent,
            }),
            Ok(o) => {
                eprintln!(
                    "SKIPPED {tag}: cannot mount a tmpfs here (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED {tag}: no mount command: {e}");
                None
            }
        }
    }

    fn entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `needed N bytes, wrote M` out of a message.
fn needed_and_wrote(msg: &str) -> (u64, u64) {
    let num = |key: &str| -> u64 {
        let rest = &msg[msg
            .find(key)
            .unwrap_or_else(|| panic!("no {key:?} in {msg}"))
            + key.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (num("needed "), num("wrote "))
}

fn bytes_under(p: &Path) -> u64 {
    convert::space::bytes_under(p)
}

#[test]
fn a_conversion_that_cannot_fit_is_refused_before_writing() {
    let Some(fs) = Tmpfs::mount("nospace-precheck", "1m") else {
        return;
    };
    let model = fixture("tiny-gpt-oss");
    for variant in ["gguf-bf16", "safetensors-bf16"] {
        let out = fs.dir.join(variant);
        let run = oss_forge(&[
            "convert",
            "--quiet",
            s(&model),
            "--to",
            variant,
            "-o",
            s(&out),
        ]);
        run.fails_with(&[
            s(&out),
            "not enough free space: needs",
            "available",
            "nothing was written",
        ]);
        assert_eq!(
            fs.entries(),
            Vec::<String>::new(),
            "{variant}: a refused conversion wrote something"
        );
    }
}

#[test]
fn a_disk_that_fills_mid_write_names_the_file_and_the_bytes_and_keeps_nothing() {
    let Some(fs) = Tmpfs::mount("nospace-midwrite", "1m") else {
        return;
    };
    let model = fixture("tiny-gpt-oss");
    let clean = TempDir::new("nospace-clean");
    for (variant, file) in [
        ("gguf-bf16", "gguf-bf16"),
        ("safetensors-bf16", "model-00001-of-00001.safetensors"),
    ] {
        let reference = clean.join(variant);
        oss_forge(&[
            "convert",
            "--quiet",
            s(&model),
            "--to",
            variant,
            "-o",
            s(&reference),
        ])
        .ok();
        let out = fs.dir.join(variant);
        let run = oss_forge(&[
            "convert",
            "--quiet",
            "--no-space-check",
            s(&model),
            "--to",
            variant,
            "-o",
            s(&out),
        ]);
        run.fails_with(&[
            s(&out),
            &format!("no space left on device writing {file}: needed "),
            "the partial output was removed",
        ]);
        let (needed, wrote) = needed_and_wrote(&run.stderr);
        let real = bytes_under(&reference);
        assert!(
            wrote > 0 && wrote < needed,
            "{variant}: needed {needed}, wrote {wrote}"
        );
        if variant.starts_with("gguf") {
            assert_eq!(
                needed, real,
                "{variant}: the GGUF's size is known exactly before writing"
            );
        } else {
            // Shards and copied side files; the index, config and card are not counted.
            assert!(
                needed <= real && needed * 100 >= real * 95,
                "{variant}: needed {needed} vs {real} written elsewhere"
            );
        }
        assert_eq!(
            fs.entries(),
            Vec::<String>::new(),
            "{variant}: the failed conversion left files on the full disk"
        );
    }
}

/// A file-size limit (`ulimit -f`, SIGXFSZ then EFBIG) stops a conversion like a full disk: a
/// named error, exit 2, nothing left behind, instead of the process killed by the signal.
#[test]
fn a_file_size_limit_is_reported_and_leaves_nothing() {
    let t = TempDir::new("ulimit-f");
    let model = fixture("tiny-gpt-oss");
    for v in ["gguf-bf16", "safetensors-bf16", "mlx-bf16"] {
        let out = t.join(v);
        let run = Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -f 1000 && exec "$0" -q convert "$1" --to "$2" -o "$3""#)
            .arg(env!("CARGO_BIN_EXE_oss-forge"))
            .arg(&model)
            .arg(v)
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{v}: {stderr}");
        assert!(stderr.contains("file-size limit"), "{v}: {stderr}");
        let left: Vec<_> = std::fs::read_dir(&t.0).unwrap().flatten().collect();
        assert!(left.is_empty(), "{v}: {left:?}");
    }
}
