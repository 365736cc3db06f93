//! Tells the tests which of the programs they drive is missing, so that a test needing one is
//! ignored with its reason (`cargo test` lists it as ignored) rather than passing without
//! having run. Where the program's variable says `require` (as CI sets it), the test runs
//! whatever is found, and fails naming the program if it is missing. Nothing here touches the
//! library: the cfgs are read by tests alone.

use std::env;
use std::path::Path;

/// A program some tests need: the names it goes by, the cfg set when none is on the `PATH`,
/// and the variable that, set to `require`, makes those tests fail without it.
const PROGRAMS: [(&[&str], &str, &str); 3] = [
    (
        &["chromium", "chromium-browser"],
        "spikebreaker_no_chromium",
        "SPIKEBREAKER_BROWSER_TESTS",
    ),
    (
        &["redis-server"],
        "spikebreaker_no_redis_server",
        "SPIKEBREAKER_REDIS_TESTS",
    ),
    (&["curl"], "spikebreaker_no_curl", "SPIKEBREAKER_CURL_TESTS"),
];

/// The serve tests' Python: not a program on the `PATH` but an interpreter with their
/// requirements installed, named by `SPIKEBREAKER_PYTHON`.
const PYTHON: (&str, &str, &str) = (
    "SPIKEBREAKER_PYTHON",
    "spikebreaker_no_python",
    "SPIKEBREAKER_PYTHON_TESTS",
);

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=PATH");
    for (names, cfg, variable) in PROGRAMS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={variable}");
        let required = env::var(variable).is_ok_and(|value| value == "require");
        if !required && !names.iter().any(|name| on_path(name)) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    let (named, cfg, variable) = PYTHON;
    println!("cargo::rustc-check-cfg=cfg({cfg})");
    println!("cargo::rerun-if-env-changed={named}");
    println!("cargo::rerun-if-env-changed={variable}");
    let required = env::var(variable).is_ok_and(|value| value == "require");
    if !required && env::var_os(named).is_none() {
        println!("cargo::rustc-cfg={cfg}");
    }
}

/// Whether an executable file `name` is in a directory of the `PATH`.
fn on_path(name: &str) -> bool {
    env::var_os("PATH").is_some_and(|path| env::split_paths(&path).any(|dir| executable(&dir.join(name))))
}

fn executable(path: &Path) -> bool {
    let Ok(metadata) = path.metadata() else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        metadata.is_file() && metadata.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        metadata.is_file()
    }
}
