//! `ctscope completions SHELL` and `ctscope man`: shell completions and the roff man page,
//! both generated from the one clap grammar in `args.rs` (clap_complete, clap_mangen), so
//! they can never drift from what the parser accepts. Writes to stdout only; packaging
//! (`cargo deb`, `.ci/package.sh`) redirects them into files. No build script: a build.rs
//! would rerun on every build for output that is needed only when packaging.

use std::io::{self, Write};

use anyhow::Result;
use clap::CommandFactory;

use super::args::{Cli, Shell};

/// Write the completion script for `shell` to `out`.
pub fn completions(shell: Shell, out: &mut dyn Write) {
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_string();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, name, out);
}

/// Write `ctscope.1` (roff) to `out`: the top-level page, with every subcommand's options
/// in its own SUBCOMMAND section so one page documents the whole tool, as conntrack(8) does.
pub fn man(out: &mut dyn Write) -> io::Result<()> {
    let cmd = Cli::command();
    let page = clap_mangen::Man::new(cmd.clone());
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    page.render_options_section(out)?;
    page.render_subcommands_section(out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("ctscope {}", sub.get_name());
        let sub = sub.clone().bin_name(name.clone());
        writeln!(out, ".SH \"{}\"", name.to_uppercase())?;
        // The subcommand's own sections become subsections of its .SH.
        let sub_page = clap_mangen::Man::new(sub);
        let mut buf = Vec::new();
        sub_page.render_synopsis_section(&mut buf)?;
        sub_page.render_description_section(&mut buf)?;
        sub_page.render_options_section(&mut buf)?;
        for line in String::from_utf8_lossy(&buf).lines() {
            match line.strip_prefix(".SH ") {
                Some(title) => writeln!(out, ".SS {title}")?,
                None => writeln!(out, "{line}")?,
            }
        }
    }
    page.render_extra_section(out)?;
    page.render_version_section(out)?;
    Ok(())
}

/// Run `completions`/`man` for the CLI: a closed pipe (`ctscope man | head`) is success.
pub fn run_completions(shell: Shell) -> Result<()> {
    let mut out = io::stdout().lock();
    completions(shell, &mut out);
    ignore_broken_pipe(out.flush())
}

/// See [`run_completions`].
pub fn run_man() -> Result<()> {
    let mut out = io::stdout().lock();
    ignore_broken_pipe(man(&mut out).and_then(|()| out.flush()))
}

fn ignore_broken_pipe(r: io::Result<()>) -> Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}
