//! Secret detection and redaction: which strings in a message are credentials, and
//! how they read once redacted (`[REDACTED:<rule-id>]`, as the SPEC words it).
//!
//! The rules are data: [`RULES`] is a table of `{ id, description, keywords, pattern,
//! examples, counter_examples }`, checked as a whole by one test that runs every rule
//! over its own positive and negative vectors. A rule runs only when one of its
//! keywords occurs (in any ASCII case), so a result without `ghp_` never pays for the
//! GitHub patterns. Keywords are necessary conditions of their pattern: this changes
//! speed, never results.
//!
//! Precision matters as much as recall here: a redaction that fires on a UUID, a git
//! commit id, a pagination cursor or the base64 of an image breaks the tool for the
//! user and teaches them to turn the filter off. So every pattern is anchored on a
//! vendor prefix or on an assignment context (`api_key = ...`), and a second check
//! (entropy, placeholders, a decoded JWT header) runs on each candidate.
//!
//! This module only decides and rewrites strings; it never logs a secret, and no
//! error it could return carries one.
//!
//! Word boundaries in the patterns are ASCII (`(?-u:\b)`): a Unicode `\b` makes the
//! regex crate leave its fast engines on any non-ASCII text.
//!
//! The vectors below are generated, not real credentials. Vendor prefixes are split
//! with `concat!` so that other secret scanners do not flag this file.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{LazyLock, OnceLock};

use regex::{Captures, Match, Regex};
use serde_json::Value;

/// One detected secret: the rule that found it and the byte range of the secret
/// itself (for an assignment, the value, not the name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMatch {
    pub rule: &'static str,
    pub range: Range<usize>,
}

/// One detection rule.
#[derive(Debug)]
pub struct Rule {
    /// Stable id: shown in `[REDACTED:<id>]`, in the audit log and in `review`.
    pub id: &'static str,
    pub description: &'static str,
    /// Lowercase substrings; the pattern runs only when the text holds one (in any
    /// ASCII case).
    pub keywords: &'static [&'static str],
    /// The regex. The secret is the first of the groups `secret`, `secret_esc`,
    /// `secret_dq`, `secret_sq`, `secret_bare` that took part, else the whole match.
    pub pattern: &'static str,
    /// Second look at a candidate, after the regex matched.
    check: fn(&Candidate<'_>) -> bool,
    /// Texts in which this rule must find a secret.
    pub examples: &'static [&'static str],
    /// Texts in which no rule may find one.
    pub counter_examples: &'static [&'static str],
}

/// What a rule's check sees of a regex match.
struct Candidate<'a> {
    /// The secret (see [`Rule::pattern`]).
    secret: &'a str,
    /// The `name` group when the pattern has one (the assigned name, or a URL's user).
    name: &'a str,
    /// The text right after the secret.
    after: &'a str,
    /// The text right before the `name` group (empty when there is none).
    before_name: &'a str,
}

/// Groups that may carry the secret, in order of preference.
const SECRET_GROUPS: [&str; 5] = [
    "secret",
    "secret_esc",
    "secret_dq",
    "secret_sq",
    "secret_bare",
];

/// The separator between a name and its value: `=`, `:`, `:=`, `=>`, with the name
/// and value optionally quoted (also JSON-escaped quotes inside a JSON-dumped text).
macro_rules! assign {
    () => {
        r#"(?:\\?["'])?[ \t]*(?::=|=>|[:=])[ \t]*"#
    };
}

/// Every rule, most specific first: where two rules' matches overlap, the earlier
/// rule wins (a GitHub token assigned to `token =` is a `github-pat`, not a
/// `generic-secret`).
pub static RULES: &[Rule] = &[
    Rule {
        id: "private-key",
        description: "a PEM or OpenSSH private key block (PGP key blocks too)",
        keywords: &["private key"],
        // BEGIN line, then only what a key body holds (RFC 1421 headers, base64,
        // whitespace, escaped newlines from a JSON-dumped text), then the END line. A
        // key cut short (no END) is redacted up to where its body stops. Headers come
        // first in the alternation: leftmost-first would otherwise stop at `Proc`.
        pattern: r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:(?:Proc-Type|DEK-Info|Comment|Version|Hash|Charset):[^\r\n\\\[\]]*|[A-Za-z0-9+/=\s]|\\[nrt/])*(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)?",
        check: is_key_block,
        examples: &[
            concat!(
                "-----BEGIN RSA ",
                "PRIVATE KEY-----\nIIATQc3i3FXu7hj+25wAuLgxku+GOdIsskoH5N+INQ0TWEa+ssyT5uAvj34LET/Z\n",
                "XaHtHQTQnXVKFj8Roxu4f6Ih2w7F41iCLmNK6NHdwxYL8K3ChEgtXEfcKLduMAjt\n",
                "0XO5VIbVOy5QNyPX7R+Ql/nMz3A4goW074IaZSP0==\n-----END RSA PRIVATE KEY-----\n"
            ),
            concat!(
                "{\"key\": \"-----BEGIN OPENSSH ",
                "PRIVATE KEY-----\\nrcttsKJSEP6LPWg6RdQfSNGRypL5u2O82we3pPSqV5vQd/juwKHsGGpigLXIciQ3\\n",
                "0JvLhcnGqR/x3C8EOg6n+ab6u71x8T22NMdQxa5ZaeC6byQa1/wPZaoOg1QEg8rg\\n",
                "-----END OPENSSH PRIVATE KEY-----\\n\"}"
            ),
            concat!(
                "-----BEGIN ENCRYPTED ",
                "PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n",
                "XaHtHQTQnXVKFj8Roxu4f6Ih2w7F41iCLmNK6NHdwxYL8K3ChEgtXEfcKLduMAjt\n",
                "rcttsKJSEP6LPWg6RdQfSNGRypL5u2O82we3pPSqV5vQd/juwKHsGGpigLXIciQ3"
            ),
        ],
        counter_examples: &[
            concat!(
                "Paste the key between `-----BEGIN ",
                "PRIVATE KEY-----` and `-----END PRIVATE KEY-----`."
            ),
            concat!(
                "-----BEGIN RSA ",
                "PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----"
            ),
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEXaHtHQTQnXVKFj8Roxu4f6Ih2w7F\n-----END PUBLIC KEY-----",
        ],
    },
    Rule {
        id: "aws-access-key-id",
        description: "an AWS access key id (long-term AKIA or temporary ASIA)",
        keywords: &["akia", "asia", "abia", "acca"],
        // The 16 characters after the prefix: AWS documents base32 (`A-Z2-7`), but
        // real ids use `0`, `1`, `8` and `9` too.
        pattern: r"(?-u:\b)(?P<secret>(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16})(?-u:\b)",
        check: is_random,
        examples: &[
            concat!("aws_access_key_id = ", "AKIA", "OM2NP4QHOKWSXAPX"),
            concat!("{\"AccessKeyId\": \"", "ASIA", "DHCDALGZYHBQFGNV\"}"),
            concat!("AWS_ACCESS_KEY_ID=", "AKIA", "Z8N0QW1R9TXB5LMK"),
        ],
        counter_examples: &[
            // AWS's own documentation key.
            "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
            "AKIA1234",
            "XAKIAOM2NP4QHOKWSXAPXQ",
        ],
    },
    Rule {
        id: "aws-secret-access-key",
        description: "an AWS secret access key assigned to an AWS secret key name",
        keywords: &["secret"],
        pattern: concat!(
            r"(?i)(?:aws[_.\-]?secret(?:[_.\-]?access)?[_.\-]?key|secret[_.\-]?access[_.\-]?key)",
            assign!(),
            r#"(?:\\?["'])?(?P<secret>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#
        ),
        check: is_random,
        examples: &[
            "aws_secret_access_key = uCPf+JmL4ZwCBOaISoVTlla4i/MxupuRedn6rAOP",
            "{\"SecretAccessKey\": \"uk6KSIgTI2b/UkqSTHlG2/ayHkaXdvRnLeihcPeX\", \"Expiration\": \"2026-01-01T00:00:00Z\"}",
            "export AWS_SECRET_ACCESS_KEY=\"uk6KSIgTI2b/UkqSTHlG2/ayHkaXdvRnLeihcPeX\"",
        ],
        counter_examples: &[
            // AWS's own documentation key.
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = ${AWS_SECRET_ACCESS_KEY}",
            // 40 base64 characters with no name around them.
            "checksum uCPf+JmL4ZwCBOaISoVTlla4i/MxupuRedn6rAOP",
        ],
    },
    Rule {
        id: "github-pat",
        description: "a GitHub classic personal access token (ghp_)",
        keywords: &["ghp_"],
        pattern: r"(?-u:\b)(?P<secret>ghp_[A-Za-z0-9]{36})(?-u:\b)",
        check: is_random,
        examples: &[
            concat!(
                "GITHUB_TOKEN=",
                "ghp_",
                "UoFJtsLpJ7OTEzN4NWFBiVxjTlJYBFsUwS0l"
            ),
            concat!(
                "Authorization: token ",
                "ghp_",
                "UoFJtsLpJ7OTEzN4NWFBiVxjTlJYBFsUwS0l"
            ),
        ],
        counter_examples: &[
            "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "tokens start with ghp_ followed by 36 characters",
        ],
    },
    Rule {
        id: "github-fine-grained-pat",
        description: "a GitHub fine-grained personal access token (github_pat_)",
        keywords: &["github_pat_"],
        pattern: r"(?-u:\b)(?P<secret>github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})(?-u:\b)",
        check: is_random,
        examples: &[concat!(
            "token: ",
            "github_pat_",
            "CctuldZgYOrVQot8JI1wH9_WZ4plvLc4kib10HGOuhauQRYqWTVr2fYD90NQDaH4HLTB3elUW7FNLWEKWF"
        )],
        counter_examples: &["set GH_TOKEN to your github_pat_... token"],
    },
    Rule {
        id: "github-oauth-token",
        description: "a GitHub OAuth access token (gho_)",
        keywords: &["gho_"],
        pattern: r"(?-u:\b)(?P<secret>gho_[A-Za-z0-9]{36})(?-u:\b)",
        check: is_random,
        examples: &[concat!(
            "{\"access_token\":\"",
            "gho_",
            "YjBYkL6KUhEPfeQ54JGAWqvS1RBU7KtdFW6E\",\"token_type\":\"bearer\"}"
        )],
        counter_examples: &["gho_0000000000000000000000000000000000000"],
    },
    Rule {
        id: "github-app-token",
        description: "a GitHub App user-to-server (ghu_) or installation (ghs_) token",
        keywords: &["ghu_", "ghs_"],
        pattern: r"(?-u:\b)(?P<secret>gh[us]_[A-Za-z0-9]{36})(?-u:\b)",
        check: is_random,
        examples: &[
            concat!(
                "user token ",
                "ghu_",
                "sCXDuEPJYQlkv8xSCLWwveQ2GkReoBOZ60SV"
            ),
            concat!(
                "git clone https://x-access-token:",
                "ghs_",
                "r7ZymO1Czmo38RscXylg1CQGMLTfMFeQ0sAu@github.com/o/r.git"
            ),
        ],
        counter_examples: &["ghs_ and ghu_ prefixes mark app tokens"],
    },
    Rule {
        id: "github-refresh-token",
        description: "a GitHub refresh token (ghr_)",
        keywords: &["ghr_"],
        pattern: r"(?-u:\b)(?P<secret>ghr_[A-Za-z0-9]{36,76})(?-u:\b)",
        check: is_random,
        examples: &[concat!(
            "refresh_token=",
            "ghr_",
            "0WtRjfZE17GsUFKeImxowuTuWIQiy4t2gqNn"
        )],
        counter_examples: &["ghr_1"],
    },
    Rule {
        id: "gitlab-pat",
        description: "a GitLab personal, project or group access token (glpat-)",
        keywords: &["glpat-"],
        pattern: r"(?-u:\b)(?P<secret>glpat-[A-Za-z0-9_\-]{20,}(?:\.[0-9a-z]{2}\.[0-9a-z]{9})?)",
        check: is_random,
        examples: &[
            concat!("PRIVATE-TOKEN: ", "glpat-", "2A-jB_r9gL3HHBqdWMM_"),
            concat!(
                "token = \"",
                "glpat-",
                "IVmIz2kECj4eZIZZwA60iA_vHjB.01.dv841xxvo\""
            ),
        ],
        counter_examples: &["glpat-xxxxxxxxxxxxxxxxxxxx", "glpat-<your token>"],
    },
    Rule {
        id: "slack-bot-token",
        description: "a Slack bot token (xoxb-)",
        keywords: &["xoxb-"],
        pattern: r"(?-u:\b)(?P<secret>xoxb-[0-9]{8,14}-[0-9]{8,14}-[A-Za-z0-9]{20,40})(?-u:\b)",
        check: is_random,
        examples: &[concat!(
            "SLACK_BOT_TOKEN=",
            "xoxb-",
            "470998580247-5064505624753-SE4sfO1xkPjiR1NY333Hi9kt"
        )],
        counter_examples: &["xoxb-000000000000-0000000000000-xxxxxxxxxxxxxxxxxxxxxxxx"],
    },
    Rule {
        id: "slack-user-token",
        description: "a Slack user token (xoxp-)",
        keywords: &["xoxp-"],
        pattern: r"(?-u:\b)(?P<secret>xoxp-[0-9]{8,14}-[0-9]{8,14}-[0-9]{8,14}-[A-Za-z0-9]{28,40})(?-u:\b)",
        check: is_random,
        examples: &[concat!(
            "\"token\": \"",
            "xoxp-",
            "149483331088-3782608750696-1004773926285-523200728e5c1182261816f8f160468b\""
        )],
        counter_examples: &["Slack user tokens look like xoxp-..."],
    },
    Rule {
        id: "slack-app-token",
        description: "a Slack app-level token (xapp-)",
        keywords: &["xapp-"],
        pattern: r"(?-u:\b)(?P<secret>xapp-[0-9]-[A-Z0-9]{9,14}-[0-9]{10,16}-[a-f0-9]{60,70})(?-u:\b)",
        check: is_random,
        examples: &[concat!(
            "SLACK_APP_TOKEN=",
            "xapp-",
            "1-ALTIL6QBK4Z-4161980261982-eac4bbfb54d61cdedbe23059d05dfeada7bf1f1420ee77bad8cbb1f8070219ca"
        )],
        counter_examples: &["xapp-1-A0000000000-0000000000000-0000"],
    },
    Rule {
        id: "slack-webhook-url",
        description: "a Slack incoming-webhook or workflow URL",
        keywords: &["hooks.slack.com"],
        pattern: r"(?P<secret>https?://hooks\.slack\.com/(?:services/T[A-Z0-9]{8,12}/B[A-Z0-9]{8,12}/[A-Za-z0-9]{20,32}|(?:workflows|triggers)/T[A-Z0-9]{8,12}/A[A-Z0-9]{8,12}/[0-9]{12,20}/[A-Za-z0-9]{24,40}))",
        check: is_random,
        examples: &[concat!(
            "curl -X POST ",
            "https://hooks.slack",
            ".com/services/T94BQPGGP/B2SYQG6X4R0/joOirRi9tE3Q79IHE1dzpsiM -d @msg.json"
        )],
        counter_examples: &[
            // Slack's own documentation placeholder.
            "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "see https://hooks.slack.com/ for details",
        ],
    },
    Rule {
        id: "stripe-secret-key",
        description: "a Stripe live secret key (sk_live_)",
        keywords: &["sk_live_"],
        pattern: r"(?-u:\b)(?P<secret>sk_live_[A-Za-z0-9]{24,247})(?-u:\b)",
        check: is_random,
        examples: &[
            concat!(
                "STRIPE_SECRET_KEY=",
                "sk_live_",
                "518V9LB76lUjTjS1XXaR3vZTlwWl7cwRrOaxsKXFHtD0Skw8ppitgu50cC3x78ghMlkh8GHVEt8ntzoRVOfjGzJiqmBraJpobnX"
            ),
            concat!(
                "stripe.api_key = '",
                "sk_live_",
                "FoBvK5LcmPawpa4Bsxzkuqsc'"
            ),
        ],
        counter_examples: &["sk_live_xxxxxxxxxxxxxxxxxxxxxxxx", "sk_live_..."],
    },
    Rule {
        id: "stripe-restricted-key",
        description: "a Stripe live restricted key (rk_live_)",
        keywords: &["rk_live_"],
        pattern: r"(?-u:\b)(?P<secret>rk_live_[A-Za-z0-9]{24,247})(?-u:\b)",
        check: is_random,
        examples: &[concat!(
            "key: ",
            "rk_live_",
            "51gOyi0NsKvxnRNg3jshjfLoXLUm2cfkaODwrwRu8oqFsLtYtCwvWet6Mi5pYu8KVnLdw9qgE2xiyws5pTHKoxTnma1tyUwXOtf"
        )],
        counter_examples: &["use an rk_live_ key with the fewest permissions"],
    },
    Rule {
        id: "openai-api-key",
        description: "an OpenAI API key (project, service-account, admin or classic)",
        keywords: &["sk-"],
        // Keys carry `T3BlbkFJ` (base64 of "OpenAI"); project keys are long enough to
        // stand on the prefix alone; the classic form is exactly 48 characters.
        pattern: r"(?-u:\b)(?P<secret>sk-(?:proj-[A-Za-z0-9_\-]{40,}|(?:svcacct-|admin-)?[A-Za-z0-9_\-]{16,}T3BlbkFJ[A-Za-z0-9_\-]{16,}|[A-Za-z0-9]{48}(?-u:\b)))",
        check: is_random,
        examples: &[
            concat!(
                "OPENAI_API_KEY=",
                "sk-proj-",
                "SK1YQYwckLo8ypKP2x1iYBtFT5srjZuVfuPqFlp-DrNY-x_-K5YH4rt6U2pvliH-atZKRNfah-T3BlbkFJ",
                "nBe-QfDrt7vKuwjWEJ64TrWoYJqvSoMixfc-GMp0E494erOkMtnInsWfP_tKEFOEFbmxnJ-kdk"
            ),
            concat!(
                "openai.api_key = \"",
                "sk-",
                "C9flodj8RgwZeWXO5PAWT3BlbkFJ3x1Qs3c9qjR8XeILDt6K\""
            ),
            concat!(
                "key ",
                "sk-svcacct-",
                "gUzcdYTUjeLk267vooE7k9ljuV5bc96FTgdVGNJsqWyp2dMy620XZhZEchJdTSzo_VPpNcFHKjT3BlbkFJ",
                "VQVYfJ5bUEMcRBO9_WY2q8XfxU7WEJno9LaBnF1BYycTPJ92fAmLesu6BkfaeGveTN10RdP6KS"
            ),
        ],
        counter_examples: &[
            "sk-proj-...",
            "the task-sk-reference in sk-learn",
            "OPENAI_API_KEY=sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ],
    },
    Rule {
        id: "anthropic-api-key",
        description: "an Anthropic API or admin key (sk-ant-)",
        keywords: &["sk-ant-"],
        pattern: r"(?-u:\b)(?P<secret>sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_\-]{80,120})",
        check: is_random,
        examples: &[concat!(
            "ANTHROPIC_API_KEY=",
            "sk-ant-api03-",
            "hNZO02trBrJgoaEOjCwEIjGwVRL-67Xc3wdMeSwpyv4cKhVPapM9SKq-QQCMhhfvdS3vRH_Vo2i0wnRyE0aspzsPED-RwAA"
        )],
        counter_examples: &["ANTHROPIC_API_KEY=sk-ant-api03-..."],
    },
    Rule {
        id: "google-api-key",
        description: "a Google API key (AIza)",
        keywords: &["aiza"],
        pattern: r"(?-u:\b)(?P<secret>AIza[A-Za-z0-9_\-]{35})(?:[^A-Za-z0-9_\-]|$)",
        check: is_random,
        examples: &[concat!(
            "https://maps.googleapis.com/maps/api/js?key=",
            "AIza",
            "APnJAP0NMj1r64BgEls0hUVIBOc4caa5ar3&callback=init"
        )],
        counter_examples: &["AIzaSy is the prefix of Google API keys"],
    },
    Rule {
        id: "npm-access-token",
        description: "an npm access token (npm_)",
        keywords: &["npm_"],
        pattern: r"(?-u:\b)(?P<secret>npm_[A-Za-z0-9]{36})(?-u:\b)",
        check: is_random,
        examples: &[concat!(
            "//registry.npmjs.org/:_authToken=",
            "npm_",
            "X0IRiSwy3A5Y5mGw9VTcXdCp8vx4WNte5iYA"
        )],
        counter_examples: &["npm_config_registry=https://registry.npmjs.org/"],
    },
    Rule {
        id: "pypi-upload-token",
        description: "a PyPI upload token (pypi-AgEIcHlwaS5vcmc...)",
        keywords: &["pypi-ageichlwas5vcmc"],
        pattern: r"(?-u:\b)(?P<secret>pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,})",
        check: is_random,
        examples: &[concat!(
            "password = ",
            "pypi-AgEIcHlwaS5vcmc",
            "_h2Au19C_lZWMJiSEjBZBoKzKsq5hWg27nEA0EYVAmTAnTS20nA4rqUI8kOYZ6qkbSjYdIFP446qo1lMRonAyi",
            "_5Uvdh_e4SieFvuxdXRR8IAcqKSJMdN5loTyomKrJPG_ny2aMxkMlWocVmHeggmN"
        )],
        counter_examples: &["tokens begin with pypi-AgEIcHlwaS5vcmc"],
    },
    Rule {
        id: "huggingface-token",
        description: "a Hugging Face access token (hf_)",
        keywords: &["hf_"],
        pattern: r"(?-u:\b)(?P<secret>hf_[A-Za-z]{34})(?-u:\b)",
        check: is_random,
        examples: &[concat!(
            "HF_TOKEN=",
            "hf_",
            "TccUGrMYZfIQkQwFOECcdmcjxMMuMhJXmJ"
        )],
        counter_examples: &["hf_hub_download(repo_id, filename)"],
    },
    Rule {
        id: "jwt",
        description: "a JSON Web Token: three base64url segments, the first a JSON header with \"alg\"",
        keywords: &["ey"],
        pattern: r"(?-u:\b)(?P<secret>ey[A-Za-z0-9_\-]{10,}\.ey[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{16,})",
        check: is_jwt,
        examples: &[
            concat!(
                "Authorization: Bearer ",
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
                ".eyJzdWIiOiJ1c2VyX3BqaXBJY0N3IiwiaWF0IjoxNzY3MjI1NjAwLCJleHAiOjE3NjcyMjkyMDAsInNjb3BlIjoicmVwbyByZWFkOm9yZyJ9",
                ".6h2AsTu5cv2h8C2-VKjzeGaYA9cXzAPbkmjQBL8gGtw"
            ),
            concat!(
                "{\"id_token\": \"",
                "eyJhbGciOiJSUzI1NiIsImtpZCI6IjE2ZmMzMTlmMTFmNjliMGIifQ",
                ".eyJzdWIiOiJ1c2VyX3BqaXBJY0N3IiwiaWF0IjoxNzY3MjI1NjAwLCJleHAiOjE3NjcyMjkyMDAsInNjb3BlIjoicmVwbyByZWFkOm9yZyJ9",
                ".fdsriwGCOck43zbwbclbrKrqeNg2rKGPoND1UbSj2jTEJiPA__yiz9mEfwWM3xq6AbOfQNoqqt3KTdiGq0UPla4rjSwriUYIME4q93XLDoIAx9Mu\"}"
            ),
        ],
        counter_examples: &[
            // Decodes to {"typ":"note","v":1}: JSON, but no "alg".
            "eyJ0eXAiOiJub3RlIiwidiI6MX0.eyJzdWIiOiJ1c2VyX3BqaXBJY0N3IiwiaWF0IjoxNzY3MjI1NjAwfQ.1yVGDQva8qmA6dAYndefJPRRDlCWR3xJBArzOOB2S2V",
            // Not base64 of JSON at all.
            "eyeballing.eyebrows-and-stuff.something-longer-here",
        ],
    },
    Rule {
        id: "http-authorization",
        description: "a credential in an HTTP Authorization header (Bearer, token, Basic)",
        keywords: &["authorization"],
        pattern: concat!(
            r#"(?i)(?-u:\b)authorization(?:\\?["'])?[ \t]*[:=][ \t]*(?:\\?["'])?[ \t]*(?:bearer|token|basic)[ \t]+"#,
            r"(?P<secret>[A-Za-z0-9._~+/\-]{12,}=*)"
        ),
        check: is_random,
        examples: &[
            "curl -H 'Authorization: Bearer v_xGXPVgVAnkyybrDu7aUvrS93zBjiN2v7Hsumqx' https://api.example.org/v1/me",
            "{\"headers\": {\"Authorization\": \"Basic Ym9iOlRyMHViNGRvciYza0s5bVE=\"}}",
        ],
        counter_examples: &[
            "-H \"Authorization: Bearer $TOKEN\"",
            "Authorization: Bearer <your-access-token>",
            "Authorization: Bearer YOUR_API_TOKEN_HERE",
        ],
    },
    Rule {
        id: "url-credentials",
        description: "a password in a URL's user-info part (scheme://user:password@host)",
        keywords: &["://"],
        pattern: r#"(?-u:\b)[A-Za-z][A-Za-z0-9+.\-]{1,15}://(?P<name>[^\s/:@\[\]"'<>]{0,64}):(?P<secret>[^\s/:@\[\]"'<>]{3,128})@[A-Za-z0-9\[]"#,
        check: is_url_password,
        examples: &[
            "DATABASE_URL=postgres://app:Zq8vLm2xRt9w@db.internal:5432/app",
            "redis://:p7Kx2mQv9LwZ4t@cache:6379/0",
        ],
        counter_examples: &[
            "postgres://user:password@localhost/db",
            "postgres://postgres:postgres@localhost:5432/postgres",
            "https://user:${DB_PASSWORD}@example.com",
            "ssh://git@github.com:22/owner/repo.git",
            "http://[::1]:8080/path",
            "new URL('https://abc:xyz@example.com')",
        ],
    },
    Rule {
        id: "generic-secret",
        description: "a high-entropy value assigned to a name like api_key, secret, token, password or credential",
        keywords: &["key", "secret", "token", "passw", "credential"],
        pattern: concat!(
            r"(?i)(?P<name>[a-z0-9_.\-]*(?:api[_.\-]?key|secret|token|password|passwd|credentials?)(?:[_.\-]?key)?)",
            assign!(),
            r#"(?:\\"(?P<secret_esc>[^"\\\s]{16,})|"(?P<secret_dq>[^"\\\s]{16,})|'(?P<secret_sq>[^'\\\s]{16,})|(?P<secret_bare>[^\s"'`,;&<>{}()\[\]\\]{16,}))"#
        ),
        check: is_generic_secret,
        examples: &[
            "api_key = \"O29sLL1V9aOKA5nG3bSR\"",
            "{\"client_secret\": \"BLkRspmWhaa2ZO3MaS3WAkJw\", \"client_id\": \"cli-1234\"}",
            "DB_PASSWORD=Tr0ub4dor#3xK9mQ!vL2",
            "session.token: a8eacc25754221c44b2dad514842b2ee",
            "https://api.example.org/v1/items?apiKey=3fU8wD0U09vwlH75cw&page=2",
            "{\\\"password\\\": \\\"3fU8wD0U09vwlH75cw\\\"}",
            "myAppCredentials := \"Zk3v9PqL1xWm7RtY5bNc2hJd\"",
            // A dotted token whose segments look random is not a code path.
            "bot_token = MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs",
        ],
        counter_examples: &[
            "password = \"changeme-changeme\"",
            "api_key: \"<your-api-key-here>\"",
            "token = \"${env:GITHUB_TOKEN}\"",
            "TOKEN=xxxxxxxxxxxxxxxxxxxxxxxx",
            "API_KEY=your-api-key-goes-here",
            "password: process.env.DB_PASSWORD",
            "api_key = os.environ[\"OPENAI_API_KEY\"]",
            "password_file = \"/run/secrets/db_password\"",
            "secret: https://vault.example.org/v1/secret/data/app",
            "{\"nextPageToken\": \"7sVnAhsFqJZ8wunySV-EIR6-EL94_ithQqtX\"}",
            "max_tokens: 4096",
            "secret_name = \"prod-database-credentials\"",
            "\"token\": \"ThisFieldIsDeprecated\"",
            "password: \"correct horse battery staple\"",
            "Enter your password: then press Enter",
            "api_key=abcdef1234567890abcdef",
            "\"secret\": \"[REDACTED:generic-secret]\"",
            // Source code that handles secrets without holding one.
            "let token = CancellationToken::new();",
            "child_token: syn::token::Brace,",
            "secret = self.colon2_token.clone()",
            "const apiKey = localStorage.getItem('apiKey2');",
            "password: this.passwordInput.value2,",
            "move |token: CancellationToken| async move {}",
            "client_secret = \"m2m-client-secret-12345\"",
            // Namespaced type names, resource names, idempotency tokens, index paths.
            "\"AWS::ApiGateway::ApiKey\": \"48205d4ffd7feba3\",",
            "\"Resource\": \"arn:aws:secretsmanager:*:*:secret:rds-beta-us-east-1!*\"",
            "\"ClientRequestToken\": \"a8ca07e4-61ec-4399-99f4-19853801bcd5\"",
            "\"output_token\": \"StreamDescription.Shards[-1].ShardId\"",
            "Credential=mock_access_key/20220524/us-east-1/s3/aws4_request",
        ],
    },
];

/// Negatives that hold for the whole table: things that look random but are not
/// secrets. Every rule must stay silent on each of them.
#[cfg(test)]
const SHARED_COUNTER_EXAMPLES: &[&str] = &[
    // UUIDs.
    "request 550e8400-e29b-41d4-a716-446655440000 failed",
    "{\"id\": \"f47ac10b-58cc-4372-a567-0e02b2c3d479\", \"requestId\": \"9b2d3c4e-1f2a-4b5c-8d9e-0a1b2c3d4e5f\"}",
    // Git object ids.
    "commit 3f786850e387550fdab836ed7e6dc881de23001b\nAuthor: A U Thor <a@example.org>",
    "{\"sha\": \"a8eacc25754221c44b2dad514842b2ee1c0ffee5\", \"tree\": {\"sha\": \"9fceb02d0ae598e95dc970b74767f19372d61af8\"}}",
    // An image content block: long base64 with no assignment context.
    concat!(
        "{\"type\":\"image\",\"mimeType\":\"image/png\",\"data\":\"iVBORw0KGgoAAAANSUhEUgAA",
        "ouFFFf6hwlwlYoOTKSTSFJjmoFbdtihcPrVSfsv2SU2DlIoO4mIzmqV+woUEgqxMaA4y4HeaIY0w10R5hC0qGiTq",
        "bu4i6TpES8OKY912QY+4PLay78Y5SI6U3GH30MsIlXX76tsri4Ye0UxdaqIDJkhzMV33RxnpRb5ca4t9T1Zfq7b+",
        "zVSCFrLy2R0w2NUfle0BiOSOY3cDokYgJ3vdQ1O+Ihl826FiGPl0p3YCDEZieaymxh9RZKjHnn6fg1PVIzsXOgvp",
        "gd1tkziZz04kW7a9S457FUKWSH8r74Q6SWxPn26DMUncU3NW69nCm/pfb5zlDXIUeqMPlNTzcqu+oPUVL8Rmx4m3",
        "hLHvXhT3hdW1tnGMjvTX/Ow2ZZQcusuiiN9mOkDs1tlZrI65vCMrz1q88+9lECt/7LkeDexdL2y+yT8Uucbugn8+",
        "2R/D3PzBwQ3N/+G+2Jugbhmv7HrEr4LoTORaC3FpOiHbjgWt85Ssgk1FQGZVxmy0AXBJekbXdFhq9ZKC4YkhAgLJ",
        "+B6+aIadhQ2NkF6gSvYME1X7YyoSFfqamzVIRYkCKE2MQhSSZvax1dY091UMHumbvhnQxBqO==\"}"
    ),
    // Hashes and integrity strings.
    "\"integrity\": \"sha512-uCPf+JmL4ZwCBOaISoVTlla4i/MxupuRedn6rAOPuk6KSIgTI2b/UkqSTHlG2/ayHkaXdvRnLeihcPeX==\"",
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    // Ordinary prose and config.
    "Set the `token` option in your config; see the docs for the secret store.",
    "max_tokens = 1024\ntemperature = 0.7\ntoken_count = 123456789012345678",
];

/// The text that replaces a secret.
fn marker(rule: &str) -> String {
    format!("[REDACTED:{rule}]")
}

/// Each rule's compiled pattern, in [`RULES`] order, compiled the first time the
/// rule's keywords are seen: a session pays (about 100 KiB a rule) only for the rules
/// its traffic needs.
static COMPILED: LazyLock<Vec<OnceLock<Regex>>> =
    LazyLock::new(|| RULES.iter().map(|_| OnceLock::new()).collect());

/// Rule `i`'s compiled pattern.
fn compiled(i: usize) -> &'static Regex {
    COMPILED[i].get_or_init(|| Regex::new(RULES[i].pattern).expect("static regex"))
}

/// The secrets in `text`, sorted by position, never overlapping.
#[must_use]
pub fn find_secrets(text: &str) -> Vec<SecretMatch> {
    // Most texts asked about (an audit record's tool name, rule and detail, three per
    // record) hold no keyword of any rule: one scan says so, without the lowercased
    // copy and a substring search per keyword (~5k instructions a record).
    if !super::output::may_hold_a_secret_keyword(text) {
        return Vec::new();
    }
    // One lowercased copy, then a substring search per keyword: measured faster than
    // a `RegexSet` of the keywords (about 40 ms against 100 ms on 4 MiB of base64).
    let lower = text.to_ascii_lowercase();
    // Start of an accepted match -> (end, rule). Rules are visited most specific first,
    // so a candidate that overlaps an accepted match loses.
    let mut accepted: BTreeMap<usize, (usize, &'static str)> = BTreeMap::new();
    for (i, rule) in RULES.iter().enumerate() {
        if !rule.keywords.iter().any(|k| lower.contains(k)) {
            continue;
        }
        let regex = compiled(i);
        for caps in regex.captures_iter(text) {
            let Some(secret) = secret_of(&caps) else {
                continue;
            };
            let candidate = Candidate {
                secret: secret.as_str(),
                name: caps.name("name").map_or("", |m| m.as_str()),
                after: &text[secret.end()..],
                before_name: caps.name("name").map_or("", |m| &text[..m.start()]),
            };
            if secret.is_empty() || !(rule.check)(&candidate) {
                continue;
            }
            let range = secret.range();
            let overlaps = accepted
                .range(..range.end)
                .next_back()
                .is_some_and(|(_, &(end, _))| end > range.start);
            if !overlaps {
                accepted.insert(range.start, (range.end, rule.id));
            }
        }
    }
    accepted
        .into_iter()
        .map(|(start, (end, rule))| SecretMatch {
            rule,
            range: start..end,
        })
        .collect()
}

/// `text` with every secret replaced by `[REDACTED:<rule-id>]`; borrowed when there
/// was nothing to replace. Idempotent: `redact(&redact(x)) == redact(x)`.
#[must_use]
pub fn redact(text: &str) -> Cow<'_, str> {
    let matches = find_secrets(text);
    if matches.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = replace(text, &matches);
    // Removing one secret can expose another: a `generic-secret` value that lost to an
    // overlapping vendor token, say, may match on its own once the token is a marker.
    // Scan again until nothing is found. A marker never matches (no pattern's secret
    // can hold `[` or `]`, and a quoted generic value that holds a marker is a
    // placeholder), so every pass removes text outside markers and the passes end;
    // the bound is there in case that reasoning ever stops holding.
    for _ in 0..MAX_REDACT_PASSES {
        let again = find_secrets(&out);
        if again.is_empty() {
            break;
        }
        out = replace(&out, &again);
    }
    Cow::Owned(out)
}

/// Rescans after the first redaction. Real text needs one (to confirm nothing is
/// left); a second only when a redaction exposed a new match.
const MAX_REDACT_PASSES: usize = 8;

/// Splices markers into `text` at `matches` (sorted, non-overlapping).
fn replace(text: &str, matches: &[SecretMatch]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for m in matches {
        out.push_str(&text[at..m.range.start]);
        out.push_str(&marker(m.rule));
        at = m.range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Redacts every string in `value` in place, object keys included: a key is text the
/// client and the model read like any other (a `structuredContent` map keyed by
/// credential, an argument named after one). A redacted key that would collide with
/// a key already there gets ` #2`, ` #3`, ... so no value is lost. Returns the ids of
/// the rules that fired, each once, in the order first seen.
pub fn redact_json(value: &mut Value) -> Vec<&'static str> {
    let mut fired = Vec::new();
    walk(value, &mut fired);
    fired
}

fn note_rules(text: &str, fired: &mut Vec<&'static str>) -> bool {
    let matches = find_secrets(text);
    for m in &matches {
        if !fired.contains(&m.rule) {
            fired.push(m.rule);
        }
    }
    !matches.is_empty()
}

fn walk(value: &mut Value, fired: &mut Vec<&'static str>) {
    match value {
        Value::String(s) => {
            if note_rules(s, fired) {
                let redacted = redact(s).into_owned();
                *s = redacted;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| walk(v, fired)),
        Value::Object(map) => {
            map.values_mut().for_each(|v| walk(v, fired));
            if map.keys().fold(false, |any, k| note_rules(k, fired) | any) {
                *map = super::rename_keys(std::mem::take(map), redact);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn secret_of<'h>(caps: &Captures<'h>) -> Option<Match<'h>> {
    SECRET_GROUPS
        .iter()
        .find_map(|g| caps.name(g))
        .or_else(|| caps.get(0))
}

// ---- checks -------------------------------------------------------------------------

/// Below this many bits per character a string is a word, a pattern or a
/// placeholder. Random base62 of 16+ characters sits near 3.7 to 5; 16 random hex
/// digits near 3.3; `aaaa...` at 0; English words around 2.5 to 3.
const MIN_ENTROPY: f64 = 3.0;

/// A run of this many equal characters marks a placeholder (`0000000`, `XXXXXX`);
/// in 40 random base62 characters it has odds of about 1 in 10^7.
const MAX_RUN: usize = 6;

/// Fewer base64 characters than this between a BEGIN and END line is documentation,
/// not a key (the smallest real keys have a few hundred).
const MIN_KEY_BODY: usize = 64;

/// Shannon entropy of `s` in bits per byte.
fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        let slot = &mut counts[usize::from(b)];
        *slot = slot.saturating_add(1);
    }
    let len = f64::from(u32::try_from(s.len()).unwrap_or(u32::MAX));
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

fn has_run(s: &str, n: usize) -> bool {
    s.as_bytes()
        .windows(n)
        .any(|w| w.iter().all(|&c| c == w[0]))
}

/// Words and shapes that mark a value as a stand-in for a secret rather than one.
const PLACEHOLDER_PARTS: &[&str] = &[
    "xxxx",
    "****",
    "...",
    "\u{2026}",
    "<",
    ">",
    "${",
    "$(",
    "{{",
    "%(",
    "example",
    "changeme",
    "change_me",
    "change-me",
    "placeholder",
    "redacted",
    "your",
    "dummy",
    "sample",
    "insert",
    "replace",
    "process.env",
    "os.environ",
    "getenv",
    "env(",
    "_here",
    "-here",
    "abcdef",
    "123456",
];

fn is_placeholder(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.starts_with('$')
        || lower.starts_with('%')
        || lower.starts_with('{')
        || PLACEHOLDER_PARTS.iter().any(|p| lower.contains(p))
        || has_run(s, MAX_RUN)
}

/// The check for vendor-prefixed tokens: not a placeholder and not a pattern.
fn is_random(c: &Candidate<'_>) -> bool {
    !is_placeholder(c.secret) && entropy(c.secret) >= MIN_ENTROPY
}

fn is_key_block(c: &Candidate<'_>) -> bool {
    let s = c.secret;
    // Skip "-----BEGIN ...-----"; stop at "-----END" when there is one.
    let body_start = s[5..].find("-----").map_or(s.len(), |i| i + 10);
    let body = s.get(body_start..).unwrap_or("");
    let body = body.find("-----END").map_or(body, |end| &body[..end]);
    let base64 = body
        .lines()
        .filter(|line| !line.contains(':'))
        .flat_map(str::chars)
        .filter(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '+' | '/' | '='))
        .count();
    base64 >= MIN_KEY_BODY
}

fn is_jwt(c: &Candidate<'_>) -> bool {
    let Some(header) = c.secret.split('.').next() else {
        return false;
    };
    let Some(bytes) = decode_base64url(header) else {
        return false;
    };
    serde_json::from_slice::<Value>(&bytes)
        .is_ok_and(|v| v.get("alg").is_some_and(Value::is_string))
}

/// Decodes unpadded base64url; `None` on any character outside the alphabet.
fn decode_base64url(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = ((acc << 6) | u32::from(v)) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// Passwords that are stand-ins in connection strings.
const URL_PLACEHOLDERS: &[&str] = &[
    "password", "passwd", "pass", "pwd", "secret", "changeme", "admin", "root", "test", "guest",
];

/// Hosts that only documentation uses (RFC 2606 and the like).
const EXAMPLE_HOSTS: &[&str] = &[
    "@example.",
    "@example:",
    "@example/",
    "@host:",
    "@host/",
    "@hostname",
];

fn is_url_password(c: &Candidate<'_>) -> bool {
    let lower = c.secret.to_ascii_lowercase();
    let after = c.after.get(..16).unwrap_or(c.after).to_ascii_lowercase();
    !URL_PLACEHOLDERS.contains(&lower.as_str())
        && !EXAMPLE_HOSTS.iter().any(|h| after.starts_with(h))
        && !c.secret.eq_ignore_ascii_case(c.name)
        && !is_placeholder(c.secret)
}

/// Names that end in "token" but carry no secret: pagination and sync cursors, which
/// tools must be able to hand back.
const NOT_SECRET_NAMES: &[&str] = &[
    "page",
    "next",
    "continuation",
    "cursor",
    "sync",
    "resume",
    "public",
    "input",
    "output",
];

/// Words that make an assigned value a description of a secret rather than one
/// (`m2m-access-token-12345`, `my-api-key-value`).
const SELF_DESCRIBING: &[&str] = &[
    "token",
    "secret",
    "passw",
    "apikey",
    "api-key",
    "api_key",
    "access_key",
    "access-key",
    "mock",
];

/// Whether `v` is a dotted path of identifiers (`self.auth_token`, `config.apiKey`),
/// that is code reading a secret rather than the secret. Tokens with dots (Discord's,
/// say) mix upper case, lower case and digits in some segment; code paths rarely do.
fn is_code_path(v: &str) -> bool {
    // Indexing (`Shards[-1]`) is part of a path too.
    let mut unindexed = String::with_capacity(v.len());
    let mut depth = 0usize;
    for ch in v.chars() {
        match ch {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => unindexed.push(ch),
            _ => {}
        }
    }
    let segments: Vec<&str> = unindexed.split('.').collect();
    let identifier = |seg: &&str| {
        seg.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    let random = |seg: &&str| {
        seg.bytes().any(|b| b.is_ascii_uppercase())
            && seg.bytes().any(|b| b.is_ascii_lowercase())
            && seg.bytes().any(|b| b.is_ascii_digit())
    };
    segments.len() >= 2 && segments.iter().all(identifier) && !segments.iter().any(random)
}

/// `8-4-4-4-12` hex. Assigned to a "token" a UUID is nearly always an idempotency or
/// request token (`ClientRequestToken`, `ChangeToken`), which callers must see.
fn is_uuid(v: &str) -> bool {
    let groups: Vec<&str> = v.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_generic_secret(c: &Candidate<'_>) -> bool {
    let name = c.name.to_ascii_lowercase();
    let v = c.secret;
    let lower = v.to_ascii_lowercase();
    let looks_like_path = v.starts_with('/')
        || v.starts_with('~')
        || v.starts_with("./")
        || v.starts_with("../")
        || v.contains("://");
    // Source code: `token = CancellationToken::new()`, `secret = self.key.clone()`.
    let looks_like_code = v.contains("::") || c.after.starts_with('(') || is_code_path(v);
    // A digit or a symbol inside: identifiers, type names and prose
    // (`ThisFieldIsDeprecated`, `CancellationToken|`) have neither.
    let core = v.trim_matches(|ch: char| !ch.is_ascii_alphanumeric());
    let mixed = core.bytes().any(|b| b.is_ascii_digit())
        || core
            .bytes()
            .any(|b| !b.is_ascii_alphanumeric() && !matches!(b, b'-' | b'_' | b'.'));
    // `AWS::ApiGateway::ApiKey`, `arn:aws:secretsmanager:...:secret:name`: the name is
    // the tail of a type or resource path, not a variable.
    let namespaced = c.before_name.ends_with(':');
    !NOT_SECRET_NAMES.iter().any(|n| name.contains(n))
        && !namespaced
        && !is_uuid(v)
        && !looks_like_path
        && !looks_like_code
        && mixed
        && !SELF_DESCRIBING.iter().any(|w| lower.contains(w))
        && !is_placeholder(v)
        && entropy(v) >= MIN_ENTROPY
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// What each rule found in `text` (after overlap resolution).
    fn rules_in(text: &str) -> Vec<&'static str> {
        find_secrets(text).into_iter().map(|m| m.rule).collect()
    }

    #[test]
    fn every_rule_finds_its_examples_and_nothing_in_counter_examples() {
        let failures = crate::filter::rule_table::failures(
            RULES.iter().map(|r| (r.id, r.examples, r.counter_examples)),
            SHARED_COUNTER_EXAMPLES,
            |text| {
                find_secrets(text)
                    .into_iter()
                    .map(|m| (m.rule, m.range))
                    .collect()
            },
        );
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn the_table_is_well_formed() {
        let mut ids: Vec<_> = RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), RULES.len(), "rule ids must be unique");
        for rule in RULES {
            assert!(
                rule.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{}: ids are kebab-case",
                rule.id
            );
            assert!(!rule.examples.is_empty(), "{}: needs examples", rule.id);
            assert!(
                !rule.counter_examples.is_empty(),
                "{}: needs counter-examples",
                rule.id
            );
            assert!(!rule.keywords.is_empty(), "{}: needs keywords", rule.id);
            for k in rule.keywords {
                assert_eq!(
                    *k,
                    k.to_ascii_lowercase(),
                    "{}: keywords are lowercase",
                    rule.id
                );
            }
        }
        assert_eq!(COMPILED.len(), RULES.len());
        for i in 0..RULES.len() {
            compiled(i);
        }
    }

    #[test]
    fn a_marker_is_never_a_secret() {
        for rule in RULES {
            let m = marker(rule.id);
            for text in [
                m.clone(),
                format!("token={m}"),
                format!("\"password\": \"{m}\""),
                format!("api_key = '{m}{m}'"),
                format!("Authorization: Bearer {m}"),
                format!("https://user:{m}@host"),
            ] {
                assert!(
                    find_secrets(&text).is_empty(),
                    "{text:?} fired {:?}",
                    find_secrets(&text)
                );
            }
        }
    }

    #[test]
    fn the_range_is_the_value_not_the_name() {
        let text = "api_key = \"O29sLL1V9aOKA5nG3bSR\" # prod";
        assert_eq!(
            redact(text),
            "api_key = \"[REDACTED:generic-secret]\" # prod"
        );
        let ghp = concat!("ghp_", "UoFJtsLpJ7OTEzN4NWFBiVxjTlJYBFsUwS0l");
        let text = format!("export GITHUB_TOKEN={ghp}\n");
        assert_eq!(redact(&text), "export GITHUB_TOKEN=[REDACTED:github-pat]\n");
    }

    #[test]
    fn the_specific_rule_wins_over_the_generic_one() {
        let ghp = concat!("ghp_", "UoFJtsLpJ7OTEzN4NWFBiVxjTlJYBFsUwS0l");
        assert_eq!(rules_in(&format!("token: {ghp}")), ["github-pat"]);
        let key = concat!("AKIA", "OM2NP4QHOKWSXAPX");
        assert_eq!(
            rules_in(&format!("aws_access_key_id={key}")),
            ["aws-access-key-id"]
        );
    }

    #[test]
    fn a_key_block_is_redacted_whole() {
        let text = RULES[0].examples[0];
        assert_eq!(redact(text), "[REDACTED:private-key]\n");
    }

    #[test]
    fn nothing_found_borrows() {
        assert!(matches!(redact("plain text"), Cow::Borrowed(_)));
    }

    #[test]
    fn redact_json_walks_strings_and_keys() {
        let ghp = concat!("ghp_", "UoFJtsLpJ7OTEzN4NWFBiVxjTlJYBFsUwS0l");
        let akia = concat!("AKIA", "OM2NP4QHOKWSXAPX");
        let image = SHARED_COUNTER_EXAMPLES[4];
        let image: Value = serde_json::from_str(image).expect("test json");
        let mut result = json!({
            "content": [
                {"type": "text", "text": format!("your token is {ghp}")},
                image.clone(),
                {"type": "resource", "resource": {
                    "uri": "file:///app/.env",
                    "mimeType": "text/plain",
                    "text": format!("AWS_ACCESS_KEY_ID={akia}\nGITHUB_TOKEN={ghp}\n"),
                }},
            ],
            "structuredContent": {"items": [{"token": ghp, "count": 3}], ghp: true},
            "isError": false,
        });
        let fired = redact_json(&mut result);
        assert_eq!(fired, ["github-pat", "aws-access-key-id"]);
        assert_eq!(
            result["content"][0]["text"],
            "your token is [REDACTED:github-pat]"
        );
        assert_eq!(result["content"][1], image, "image data is untouched");
        assert_eq!(
            result["content"][2]["resource"]["text"],
            "AWS_ACCESS_KEY_ID=[REDACTED:aws-access-key-id]\nGITHUB_TOKEN=[REDACTED:github-pat]\n"
        );
        assert_eq!(
            result["structuredContent"]["items"][0]["token"],
            "[REDACTED:github-pat]"
        );
        assert_eq!(
            result["structuredContent"]["[REDACTED:github-pat]"], true,
            "keys are redacted too (issue 13)"
        );
        // Two keys that redact to the same text keep both values.
        let other = concat!("ghp_", "ZoFJtsLpJ7OTEzN4NWFBiVxjTlJYBFsUwS0l");
        let mut two = json!({ghp: 1, other: 2});
        redact_json(&mut two);
        assert_eq!(
            two,
            json!({"[REDACTED:github-pat]": 1, "[REDACTED:github-pat] #2": 2})
        );
        assert!(
            redact_json(&mut result).is_empty(),
            "a second pass finds nothing"
        );
    }

    /// Fragments for the property tests: every vector, joined by arbitrary text.
    fn fragment() -> impl Strategy<Value = String> {
        let vectors: Vec<String> = RULES
            .iter()
            .flat_map(|r| r.examples.iter().chain(r.counter_examples))
            .chain(SHARED_COUNTER_EXAMPLES)
            .map(|s| (*s).to_owned())
            .collect();
        prop_oneof![
            prop::sample::select(vectors),
            "[ -~]{0,40}",
            prop::sample::select(vec![
                " token=".to_owned(),
                "\"".to_owned(),
                "[".to_owned(),
                "]".to_owned(),
                "\n".to_owned(),
                "secret: ".to_owned(),
                "ghp_".to_owned(),
            ]),
        ]
    }

    proptest! {
        #[test]
        fn redact_is_idempotent(parts in prop::collection::vec(fragment(), 0..6)) {
            let text = parts.concat();
            let once = redact(&text).into_owned();
            let twice = redact(&once).into_owned();
            prop_assert_eq!(&once, &twice);
            prop_assert!(find_secrets(&once).is_empty());
        }

        #[test]
        fn matches_are_sorted_disjoint_and_on_char_boundaries(
            parts in prop::collection::vec(fragment(), 0..6)
        ) {
            let text = parts.concat();
            let found = find_secrets(&text);
            for pair in found.windows(2) {
                prop_assert!(pair[0].range.end <= pair[1].range.start);
            }
            for m in &found {
                prop_assert!(text.is_char_boundary(m.range.start));
                prop_assert!(text.is_char_boundary(m.range.end));
            }
        }

        #[test]
        fn arbitrary_text_does_not_panic(text in "\\PC{0,200}") {
            let _ = redact(&text);
        }
    }
}
