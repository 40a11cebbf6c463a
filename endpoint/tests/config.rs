//! Configuration of the real binary: `.env` against the environment against flags, start-up
//! errors, and the secret staying out of the log.

mod common;

use common::{BIN, Workdir, assert_no_error_in_log};

#[tokio::test]
async fn dotenv_wins_over_the_environment_and_flags_win_over_dotenv() {
    let wd = Workdir::new();
    std::fs::write(
        wd.path().join(".env"),
        "# as in the seed\nSQLITE3_PATH=from-dotenv.sqlite3\nUSER_ID=someone\n",
    )
    .unwrap();
    let env = [
        ("ENDPOINT_MODE", "sqlite3-local"),
        ("ENDPOINT_PORT", "0"),
        ("SQLITE3_PATH", "from-env.sqlite3"),
    ];

    // The environment says from-env.sqlite3 (overriding the path `start` sets); .env must win.
    let ep = wd.start(&env, &[]);
    ep.txn(r#"{"value":[{"f":"append","k":0,"v":1}]}"#).await;
    drop(ep);
    assert!(wd.path().join("from-dotenv.sqlite3").exists());
    assert!(!wd.path().join("from-env.sqlite3").exists());
    assert!(!wd.db().exists());

    let ep = wd.start(&env, &["--sqlite3-path", "from-flag.sqlite3"]);
    ep.txn(r#"{"value":[{"f":"r","k":0,"v":null}]}"#).await;
    drop(ep);
    assert!(wd.path().join("from-flag.sqlite3").exists());
    assert!(!wd.path().join("from-env.sqlite3").exists());
    assert_no_error_in_log(&wd.log());
}

/// Extra environment, arguments, and a text the failure output must contain.
type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);

#[test]
fn configuration_mistakes_exit_non_zero_with_a_message() {
    let wd = Workdir::new();
    let base = [("ENDPOINT_MODE", "sqlite3-local"), ("ENDPOINT_PORT", "0")];
    let cases: [Case; 5] = [
        (
            &[("BACKEND_CONNECTOR", "FancyConnector")],
            &[],
            "FancyConnector",
        ),
        (&[("ENDPOINT_LOG_LEVEL", "LOUD")], &[], "LOUD"),
        (&[("LOCAL_ONLY", "maybe")], &[], "maybe"),
        (
            &[],
            &["--mode", "powersync", "--local-only", "true"],
            "contradicts",
        ),
        (
            &[("JWKS_PRIVATE_KEY", "not*base64")],
            &["--mode", "powersync"],
            "JWKS_PRIVATE_KEY: not base64",
        ),
    ];
    for (env, args, needle) in cases {
        let env: Vec<_> = base.iter().chain(env).copied().collect();
        let (status, output) = wd.run_to_exit(&env, args);
        assert!(
            !status.success(),
            "{env:?} {args:?} should fail; output:\n{output}"
        );
        assert!(
            output.contains(needle),
            "{env:?} {args:?}: {needle:?} not in:\n{output}"
        );
    }
    // The default mode (no ENDPOINT_MODE, LOCAL_ONLY unset) is the synced one, as in the seed;
    // without JWKS_PRIVATE_KEY it signs with the built-in public development key (as the Dart
    // endpoint) and says so once at WARN, without the word "error". No service answers here,
    // so the (optional) first-sync limit ends it.
    let (status, output) = wd.run_to_exit(
        &[
            ("ENDPOINT_PORT", "0"),
            ("POWERSYNC_URL", "http://127.0.0.1:9"),
        ],
        &["--first-sync-timeout", "2s"],
    );
    assert!(!status.success());
    assert!(output.contains("mode=powersync"), "{output}");
    let warned: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("public development key"))
        .collect();
    assert_eq!(warned.len(), 1, "{output}");
    assert!(
        warned[0].contains(" WARN ") && !warned[0].to_lowercase().contains("error"),
        "{output}"
    );
    assert!(!output.contains("is required"), "{output}");
    assert!(
        output.contains("no complete first sync with every seeded key within 2s"),
        "{output}"
    );
}

#[tokio::test]
async fn the_jwks_private_key_is_never_printed() {
    let wd = Workdir::new();
    let secret = "eyJrdHkiOiJSU0EiLCJzZWNyZXQtbWFya2VyIjoxfQ";
    let ep = wd.start(
        &[("JWKS_PRIVATE_KEY", secret), ("ENDPOINT_LOG_LEVEL", "ALL")],
        &[],
    );
    ep.txn(r#"{"value":[{"f":"r","k":0,"v":null}]}"#).await;
    drop(ep);
    let log = wd.log();
    assert!(log.contains("JWKS_PRIVATE_KEY=<set>"), "{log}");
    assert!(!log.contains(secret), "{log}");

    let help = std::process::Command::new(BIN)
        .arg("--help")
        .env("JWKS_PRIVATE_KEY", secret)
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(
        help.contains("JWKS_PRIVATE_KEY") && !help.contains(secret),
        "{help}"
    );
}
