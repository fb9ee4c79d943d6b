//! Fuzz target: `convert::fuzzing::gguf` on arbitrary bytes. Errors are expected; a panic, an
//! abort or an allocation past libFuzzer's limits is a bug.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = convert::fuzzing::gguf(data);
});
