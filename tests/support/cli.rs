//! Runs the `spikebreaker` binary (feature `cli`) for the tests that drive it.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `spikebreaker` with `args`, feeding it `stdin`.
pub fn spikebreaker(args: &[&str], stdin: &str) -> Output {
    run(args, stdin, Stdio::piped())
}

/// Runs `spikebreaker` with `args` and `stdin`, its standard output a pipe whose reader is gone
/// (as `spikebreaker … | head` once `head` has exited): every write to it fails with a broken
/// pipe, whatever the timing. The reader is another process's, waited for before the run.
pub fn spikebreaker_into_a_closed_pipe(args: &[&str], stdin: &str) -> Output {
    let mut reader = Command::new(env!("CARGO_BIN_EXE_spikebreaker"))
        .arg("--version")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the binary runs");
    let closed = reader.stdin.take().unwrap();
    assert!(reader.wait().unwrap().success());
    run(args, stdin, closed.into())
}

fn run(args: &[&str], stdin: &str, stdout: Stdio) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spikebreaker"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // Fed from a thread so a large log and a large report can't fill both pipes at once; a
    // command that refuses its arguments exits without reading, which is not an error here.
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_owned();
    let feeder = std::thread::spawn(move || drop(input.write_all(stdin.as_bytes())));
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    output
}
