//! `pms-config`: the Worker's own configuration commands (`config::operator_tools`), natively:
//! validate a document before `wrangler secret put`, and hash a client secret the way the
//! configuration stores it. `pms-events config …` runs the same code built for Node.
//!
//! ```text
//! pms-config check FILE                 exit 0 and a summary, or 1 and the Worker's error
//! pms-config hash-secret [ITERATIONS]   reads the secret from standard input
//! ```

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    std::process::exit(cli::run(&std::env::args().skip(1).collect::<Vec<_>>()));
}

// The crate also builds for the Worker; this tool has nothing to do there.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::io::Read;

    use pms_events::config::operator_tools::{check_document, hash_secret, ToolOutcome, USAGE};

    pub fn run(args: &[String]) -> i32 {
        let outcome = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["check", file] => match std::fs::read_to_string(file) {
                Ok(text) => check_document(&text),
                Err(e) => failed(format!("cannot read {file}: {e}")),
            },
            ["hash-secret", rest @ ..] if rest.len() <= 1 => {
                let mut stdin = String::new();
                let mut salt = [0u8; 16];
                if std::io::stdin().read_to_string(&mut stdin).is_err() {
                    failed("cannot read the secret from standard input".into())
                } else if getrandom::getrandom(&mut salt).is_err() {
                    ToolOutcome { status: 1, stdout: String::new(), stderr: "no randomness available".into() }
                } else {
                    hash_secret(&stdin, rest.first().copied(), &salt)
                }
            }
            _ => failed(USAGE.into()),
        };
        if !outcome.stdout.is_empty() {
            println!("{}", outcome.stdout);
        }
        if !outcome.stderr.is_empty() {
            eprintln!("{}", outcome.stderr);
        }
        outcome.status
    }

    fn failed(stderr: String) -> ToolOutcome {
        ToolOutcome { status: 2, stdout: String::new(), stderr }
    }
}
