//! What `--help`, `ctscope man` and `ctscope completions` show, from the binary a user runs:
//! insta snapshots of the top-level and `list` help (a changed flag shows up in review),
//! a man page that documents every subcommand and option the parser accepts, and
//! completion scripts that the shell itself accepts and that name every subcommand.

use std::process::{Command, Output, Stdio};

use clap::CommandFactory;
use ctscope::cli::Cli;

fn ctscope(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(args)
        .stdin(Stdio::null())
        .env_remove("COLUMNS")
        .output()
        .expect("run ctscope");
    assert!(
        out.status.success(),
        "ctscope {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(args: &[&str]) -> String {
    String::from_utf8(ctscope(args).stdout).expect("UTF-8 output")
}

#[test]
fn top_level_help() {
    insta::assert_snapshot!(stdout(&["--help"]));
}

#[test]
fn list_help() {
    insta::assert_snapshot!(stdout(&["list", "--help"]));
}

#[test]
fn dashboard_options_sit_under_their_own_heading() {
    let help = stdout(&["list", "--help"]);
    let (general, dashboard) = help
        .split_once("\nDashboard:\n")
        .expect("a Dashboard heading");
    for flag in ["--theme", "--read-only", "--fast", "--color"] {
        assert!(
            !general.contains(flag),
            "{flag} outside the Dashboard heading:\n{help}"
        );
        assert!(
            dashboard.contains(flag),
            "{flag} missing from Dashboard:\n{help}"
        );
    }
}

/// Every subcommand and every long option of every subcommand is on the page, in roff.
#[test]
fn man_page_documents_every_command_and_option() {
    let page = stdout(&["man"]);
    assert!(page.contains(".TH ctscope 1"), "not a section-1 man page");
    let cli = Cli::command();
    for sub in cli.get_subcommands() {
        let heading = format!(".SH \"CTSCOPE {}\"", sub.get_name().to_uppercase());
        let start = page
            .find(&heading)
            .unwrap_or_else(|| panic!("{heading} missing"));
        let section = &page[start..];
        let section = &section[..section[heading.len()..]
            .find("\n.SH ")
            .map_or(section.len(), |i| i + heading.len())];
        for arg in sub.get_arguments() {
            if let Some(long) = arg.get_long() {
                // roff escapes every '-' of an option name.
                let roff = format!("\\fB\\-\\-{}\\fR", long.replace('-', "\\-"));
                assert!(section.contains(&roff), "{heading}: --{long} missing");
            }
        }
    }
}

/// The page renders without a warning. `-k` runs preconv for the UTF-8 in the help text
/// (…), as man(1) does.
#[test]
fn man_page_renders_cleanly() {
    // .ci/run installs groff-base, so CI always checks.
    let Ok(status) = Command::new("groff")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
    else {
        eprintln!("groff not installed: rendering not checked");
        return;
    };
    assert!(status.success());
    let page = ctscope(&["man"]).stdout;
    let mut child = Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run groff");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&page).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warnings");
}

#[test]
fn completions_parse_in_bash_and_name_every_command() {
    let names: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&["completions", shell]);
        for name in &names {
            assert!(script.contains(name.as_str()), "{shell}: '{name}' missing");
        }
    }
    // bash is always present where the tests run: it must accept its script.
    let dir = std::env::temp_dir().join(format!("ctscope-completions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ctscope.bash");
    std::fs::write(&file, stdout(&["completions", "bash"])).unwrap();
    let check = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p ctscope",
            file.display()
        ))
        .output()
        .expect("run bash");
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        check.status.success() && String::from_utf8_lossy(&check.stdout).contains("ctscope"),
        "bash rejected the script: {}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
