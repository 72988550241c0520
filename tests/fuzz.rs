//! Fuzz targets on the stable toolchain (issue 14 item 6): the line codec, message
//! parsing, config and lock parsing, canonical JSON, the output filters and the URI
//! template matcher, each fed
//! its committed seed corpus (`tests/fuzz/corpus/TARGET/`) and then mutations of it.
//!
//! No `cargo fuzz` (nightly): a small mutation loop of our own, deterministic for a
//! given seed, with every target a plain function that must not panic and must keep
//! its laws (a canonical form is canonical again, redaction is idempotent, a lock file
//! rendered from a parse parses back the same). `cargo test` runs the corpora and a
//! few hundred mutations per target; `MCP_WARDEN_FUZZ_SECS=N` runs each target for N
//! seconds instead (`.ci/run` does, bounded), `MCP_WARDEN_FUZZ_SEED` replays a run. A
//! failing input is written to `target/fuzz-failures/TARGET-HASH` to be added to the
//! corpus once fixed.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mcp_warden::jsonrpc::{ParseError, Parsed};
use tokio_util::codec::Decoder;

/// Mutations per target in a plain `cargo test`, after the corpus.
const QUICK_RUNS: u64 = 300;

/// The largest input a mutation grows to.
const MAX_INPUT: usize = 16 * 1024;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fuzz")
        .join("corpus")
        .join(target)
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!seeds.is_empty(), "no seed corpus for `{target}`");
    seeds
}

/// Picks mutations: the generator the canonical JSON tests use too.
#[path = "support/xorshift.rs"]
mod xorshift;
use xorshift::Xorshift as Rng;

/// Bytes that matter to these formats, for insertions.
const INTERESTING: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"'''",
    b"\"\"\"",
    b"=",
    b"[[pins]]",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\xae",
    b"\x1b[31m",
    b"\0",
    b"1e308",
    b"-0",
    b"9007199254740993",
    b"\\u0000",
    b"\\ud800",
    b"<<<<<<< ours\n",
    b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(8) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let end = (at + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            2 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                data.splice(at..at, piece.iter().copied());
            }
            3 => {
                // Splice in a piece of another seed.
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let to = (from + rng.below(64)).min(other.len());
                data.splice(at..at, other[from..to].iter().copied());
            }
            4 if !data.is_empty() => {
                // Repeat a piece (deep nesting, long lines).
                let to = (at + rng.below(8)).min(data.len());
                let piece = data[at.min(to)..to].to_vec();
                for _ in 0..rng.below(64) {
                    data.splice(at..at, piece.iter().copied());
                }
            }
            _ => {
                let byte = u8::try_from(rng.next() & 0xff).unwrap_or(0);
                data.insert(at, byte);
            }
        }
    }
    data.truncate(MAX_INPUT);
    data
}

/// Runs `check` on every seed, then on mutations for the budget; panics naming the
/// first input that made `check` panic (and saves it).
fn fuzz(target: &str, check: impl Fn(&[u8])) {
    let seeds = seeds(target);
    let secs: Option<u64> = std::env::var("MCP_WARDEN_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok());
    let seed: u64 = std::env::var("MCP_WARDEN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut rng = Rng::new(seed);
    let deadline = secs.map(|s| Instant::now() + Duration::from_secs(s));
    let mut runs = 0u64;
    let mut next = |runs: u64| -> Option<Vec<u8>> {
        if let Some(s) = seeds.get(usize::try_from(runs).unwrap_or(usize::MAX)) {
            return Some(s.clone());
        }
        let more = match deadline {
            Some(d) => Instant::now() < d,
            None => runs < seeds.len() as u64 + QUICK_RUNS,
        };
        more.then(|| mutate(&mut rng, &seeds))
    };
    while let Some(input) = next(runs) {
        runs += 1;
        if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target")
                .join("fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let name = format!("{target}-{:016x}", fnv(&input));
            let _ = std::fs::write(dir.join(&name), &input);
            panic!(
                "fuzz target `{target}` failed on input {} (seed {seed}, run {runs}): {:?}",
                dir.join(&name).display(),
                String::from_utf8_lossy(&input)
            );
        }
    }
    eprintln!("fuzz `{target}`: {runs} inputs");
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn fuzz_line_codec() {
    fuzz("codec", |input| {
        // The same bytes in chunks cut at points taken from the input itself.
        let max = 64;
        let mut codec = mcp_warden::jsonrpc::LineCodec::new(max);
        let mut buf = BytesMut::new();
        let step = usize::from(input.first().copied().unwrap_or(7) % 13) + 1;
        for chunk in input.chunks(step) {
            buf.extend_from_slice(chunk);
            while let Some(line) = codec.decode(&mut buf).unwrap() {
                let _ = line;
            }
        }
        while let Some(line) = codec.decode_eof(&mut buf).unwrap() {
            let _ = line;
        }
    });
}

#[test]
fn fuzz_message_parse() {
    // Differential: the one-pass parser and the serde_json reference give the same
    // message (kind, spans) or the same refusal in the same words, for every line.
    fuzz("message", |input| {
        // The params index too: the one-pass parser builds it as it walks, the
        // reference at the first question (asked here of both before comparing).
        let settled = |parsed: Result<Parsed, ParseError>| {
            match &parsed {
                Ok(Parsed::Single(msg)) => drop(msg.param(&[""])),
                Ok(Parsed::Batch(items)) => {
                    items.iter().flatten().for_each(|m| drop(m.param(&[""])));
                }
                Err(_) => {}
            }
            format!("{parsed:?}")
        };
        for line in input.split(|b| *b == b'\n') {
            let line = bytes::Bytes::copy_from_slice(line);
            let fast = settled(mcp_warden::jsonrpc::parse(line.clone()));
            let reference = settled(mcp_warden::jsonrpc::parse_in_two_passes(line.clone()));
            assert_eq!(fast, reference, "the two parsers disagree on {line:?}");
        }
    });
}

#[test]
fn fuzz_config_parse() {
    use mcp_warden::config::{Layer, Source, findings, raw, validate};
    fuzz("config", |input| {
        let text = String::from_utf8_lossy(input);
        let path = Path::new("/fuzz/mcp-warden.toml");
        let source = Source::new(path, &text);
        for layer in [Layer::User, Layer::Workspace] {
            let (config, diagnostics) = validate::validate(layer, &source, raw::parse(&source));
            for d in &diagnostics {
                let _ = d.to_string();
            }
            let _ = findings::findings(&source, &config.servers);
        }
    });
}

#[test]
fn fuzz_lock_parse() {
    use mcp_warden::pinning::lock;
    fuzz("lock", |input| {
        let text = String::from_utf8_lossy(input);
        let path = Path::new("/fuzz/mcp-warden.lock");
        if let Ok(parsed) = lock::parse(path, &text) {
            // Law: what is rendered from a parse parses back to the same pins, in the
            // current format (a version 1 file is written back as version 2, its pins
            // unchanged: they still leave `_meta` out, so an item with one stays held).
            let again = lock::parse(path, &lock::render(&parsed)).unwrap();
            assert_eq!(again.servers, parsed.servers);
            assert_eq!(again.items, parsed.items);
            assert!(
                !again.legacy_meta,
                "a rendered lock is in the current format"
            );
        }
    });
}

#[test]
fn fuzz_canonical_json() {
    use mcp_warden::canonical::canonicalize;
    fuzz("canonical", |input| {
        let text = String::from_utf8_lossy(input);
        if let Ok(canonical) = canonicalize(&text) {
            // Law: the canonical form is its own canonical form.
            assert_eq!(canonicalize(&canonical).unwrap(), canonical);
        }
    });
}

#[test]
fn fuzz_output_filters() {
    use mcp_warden::filter::{injection, secrets};
    fuzz("filters", |input| {
        let text = String::from_utf8_lossy(input);
        // Law: redaction is idempotent, and what it leaves has no secret.
        let once = secrets::redact(&text).into_owned();
        assert_eq!(secrets::redact(&once), once);
        assert!(secrets::find_secrets(&once).is_empty());
        let _ = injection::find_injection(&text);
        let shown = mcp_warden::textclass::escape_hidden(&text);
        assert!(!shown.contains('\u{1b}') && !shown.contains('\u{202e}'));
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
            let mut value = value;
            let _ = secrets::redact_json(&mut value);
            let _ = injection::find_injection_json(&value);
        }
    });
}

/// A template with every expression taken empty, as a URI it must match; `None` when
/// a `{` is not closed.
fn filled_empty(template: &str) -> Option<String> {
    let mut uri = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        uri.push_str(&rest[..open]);
        let close = rest[open..].find('}')?;
        rest = &rest[open + close + 1..];
    }
    uri.push_str(rest);
    Some(uri)
}

#[test]
fn fuzz_uri_template() {
    use mcp_warden::router::uri::template_matches;
    fuzz("uri_template", |input| {
        // A template, a newline, a URI; without a newline, the text is both.
        let text = String::from_utf8_lossy(input);
        let (template, uri) = text.split_once('\n').unwrap_or((&text, &text));
        // Law: linear in the URI, whatever the template (a generous bound: the
        // machine may be loaded; a backtracking matcher takes hours here).
        let started = Instant::now();
        let _ = template_matches(template, uri);
        let _ = template_matches(uri, template);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "slow: {template:?}"
        );
        // Law: a template of a real size matches itself with every expression empty.
        if template.len() <= 1024
            && template.matches('{').count() <= 16
            && let Some(empty) = filled_empty(template)
        {
            assert!(
                template_matches(template, &empty),
                "{template:?} vs {empty:?}"
            );
        }
    });
}
