//! `pms-config`: the Worker's own configuration code, natively, for operators (through
//! `node bin/pms-events.mjs config …`): validate a document before `wrangler secret put`,
//! and hash a client secret the way the configuration stores it.
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

    use pms_events::config::secret_hash::SecretHash;
    use pms_events::config::ServiceConfig;

    const USAGE: &str = "usage: pms-config check FILE | pms-config hash-secret [ITERATIONS] (secret on stdin)";

    pub fn run(args: &[String]) -> i32 {
        match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["check", file] => check(file),
            ["hash-secret"] => hash_secret(None),
            ["hash-secret", iterations] => hash_secret(Some(iterations)),
            _ => {
                eprintln!("{USAGE}");
                2
            }
        }
    }

    fn check(file: &str) -> i32 {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("cannot read {file}: {e}");
                return 2;
            }
        };
        // Exactly what the Worker runs at load (`edge::settings`), with its message.
        match ServiceConfig::parse(&text) {
            Ok(config) => {
                println!("{}", config.summary());
                0
            }
            Err(e) => {
                eprintln!("{e}");
                1
            }
        }
    }

    fn hash_secret(iterations: Option<&str>) -> i32 {
        let iterations = match iterations.map(str::parse::<u32>) {
            None => 10_000,
            Some(Ok(n)) if (1_000..=1_000_000).contains(&n) => n,
            Some(_) => {
                eprintln!("iterations must be a whole number from 1000 to 1000000");
                return 2;
            }
        };
        let mut secret = String::new();
        if std::io::stdin().read_to_string(&mut secret).is_err() {
            eprintln!("cannot read the secret from standard input");
            return 2;
        }
        let secret = secret.trim_end_matches(['\n', '\r']);
        if secret.is_empty() {
            eprintln!("the secret on standard input is empty");
            return 2;
        }
        let mut salt = [0u8; 16];
        if getrandom::getrandom(&mut salt).is_err() {
            eprintln!("no randomness available");
            return 1;
        }
        let hash = SecretHash::new(secret, &salt, iterations);
        // The configuration refuses what it cannot parse back: so does this tool.
        if SecretHash::parse(&hash.encode()).is_err() {
            eprintln!("the hash does not parse back (weak parameters?)");
            return 1;
        }
        println!("{}", hash.encode());
        0
    }
}
