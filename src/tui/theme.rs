//! Themes: every colour the TUI uses, in one place, for dark and light terminals, a
//! 16-colour palette, and monochrome (NO_COLOR / `--color never`).
//!
//! Colour is never the only signal: every coloured thing (helper, risk) is also written as
//! text, and the monochrome theme uses only bold/underline/reverse. This module must not
//! decide what is shown, only how it looks.

use ratatui::style::{Color, Modifier, Style};

use crate::risk::Level;

/// Which palette to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThemeKind {
    Dark,
    Light,
    Ansi16,
    Mono,
}

impl ThemeKind {
    pub const ALL: [ThemeKind; 4] = [
        ThemeKind::Dark,
        ThemeKind::Light,
        ThemeKind::Ansi16,
        ThemeKind::Mono,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ThemeKind::Dark => "dark",
            ThemeKind::Light => "light",
            ThemeKind::Ansi16 => "16",
            ThemeKind::Mono => "mono",
        }
    }

    /// The theme for `--color auto|always|never` and a `--theme` name, honouring NO_COLOR
    /// (<https://no-color.org>: set and non-empty disables colour) unless colour is forced.
    /// With no theme named, a terminal that does not say it shows 256 colours (`TERM`,
    /// `COLORTERM`, see `Terminal::has_256`) gets the 16-colour theme: the dark theme's
    /// 256-colour indexes would be guessed at, or dropped, by such a terminal.
    pub fn choose(
        color: &str,
        theme: Option<&str>,
        no_color_env: Option<&str>,
        term: Terminal<'_>,
    ) -> ThemeKind {
        let no_color = no_color_env.is_some_and(|v| !v.is_empty());
        if color == "never" || (color != "always" && no_color) {
            return ThemeKind::Mono;
        }
        match theme {
            Some("dark") => ThemeKind::Dark,
            Some("light") => ThemeKind::Light,
            Some("16") | Some("ansi16") => ThemeKind::Ansi16,
            Some("mono") | Some("monochrome") => ThemeKind::Mono,
            _ if term.has_256() => ThemeKind::Dark,
            _ => ThemeKind::Ansi16,
        }
    }

    pub fn next(self) -> ThemeKind {
        let i = ThemeKind::ALL.iter().position(|k| *k == self).unwrap_or(0);
        ThemeKind::ALL[(i + 1) % ThemeKind::ALL.len()]
    }
}

/// What the environment says about the terminal's colours: `TERM` and `COLORTERM`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Terminal<'a> {
    pub term: Option<&'a str>,
    pub colorterm: Option<&'a str>,
}

impl Terminal<'_> {
    /// 256 colours or more: `COLORTERM` is `truecolor` or `24bit` (the convention of
    /// terminals with direct colour), or the terminfo name says so (`xterm-256color`,
    /// `tmux-256color`, `*-direct`). `xterm`, `linux`, `screen`, `vt100` or no `TERM` at
    /// all: 16 colours.
    pub fn has_256(self) -> bool {
        let direct = self
            .colorterm
            .is_some_and(|c| matches!(c.to_ascii_lowercase().as_str(), "truecolor" | "24bit"));
        let named = self
            .term
            .is_some_and(|t| t.contains("256color") || t.ends_with("-direct"));
        direct || named
    }
}

/// Resolved styles for one theme.
#[derive(Debug, Clone)]
pub struct Theme {
    pub kind: ThemeKind,
    pub base: Style,
    pub title: Style,
    pub dim: Style,
    pub header_cell: Style,
    pub tab: Style,
    pub tab_active: Style,
    pub selected: Style,
    pub related: Style,
    pub paused: Style,
    pub error: Style,
    pub error_span: Style,
    pub ok: Style,
    pub warn: Style,
    pub gauge: Style,
    pub border: Style,
    /// Per-helper palette; a helper's colour is stable for the life of the process.
    helpers: &'static [Color],
    /// Risk badges by `Level`, least free first (Fixed, In Packet, Iface, In CMD, Full).
    freedom: [Style; 5],
    /// A badge of an entry with findings (`!3306`): the text says it, the style shouts it.
    pub finding: Style,
}

const DARK_HELPERS: [Color; 8] = [
    Color::Indexed(81),  // cyan
    Color::Indexed(213), // pink
    Color::Indexed(221), // yellow
    Color::Indexed(120), // green
    Color::Indexed(141), // purple
    Color::Indexed(209), // orange
    Color::Indexed(39),  // blue
    Color::Indexed(180), // tan
];

const LIGHT_HELPERS: [Color; 8] = [
    Color::Indexed(24),
    Color::Indexed(127),
    Color::Indexed(130),
    Color::Indexed(28),
    Color::Indexed(55),
    Color::Indexed(166),
    Color::Indexed(19),
    Color::Indexed(94),
];

const ANSI_HELPERS: [Color; 6] = [
    Color::Cyan,
    Color::Magenta,
    Color::Yellow,
    Color::Green,
    Color::Blue,
    Color::LightMagenta,
];

/// Helpers in the netfilter authors' table get fixed slots so screenshots and habits stay
/// stable; any other helper (a userspace cthelper) hashes into the palette.
fn helper_slot(name: &str) -> usize {
    match name {
        "ftp" => 0,
        "sip" => 1,
        "irc" => 2,
        "tftp" => 3,
        "RAS" | "Q.931" | "h323" | "H.245" => 4,
        "pptp" => 5,
        "amanda" | "sane" => 6,
        "netbios-ns" | "snmp" => 7,
        other => other
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize)),
    }
}

impl Theme {
    pub fn new(kind: ThemeKind) -> Theme {
        let bold = Modifier::BOLD;
        match kind {
            ThemeKind::Dark => Theme {
                kind,
                base: Style::new(),
                title: Style::new().fg(Color::Indexed(81)).add_modifier(bold),
                dim: Style::new().fg(Color::Indexed(245)),
                header_cell: Style::new().fg(Color::Indexed(250)).add_modifier(bold),
                tab: Style::new().fg(Color::Indexed(245)),
                tab_active: Style::new()
                    .fg(Color::Black)
                    .bg(Color::Indexed(81))
                    .add_modifier(bold),
                selected: Style::new().bg(Color::Indexed(238)).add_modifier(bold),
                related: Style::new().add_modifier(bold),
                paused: Style::new()
                    .fg(Color::Black)
                    .bg(Color::Indexed(221))
                    .add_modifier(bold),
                error: Style::new().fg(Color::Indexed(203)),
                error_span: Style::new()
                    .fg(Color::White)
                    .bg(Color::Indexed(160))
                    .add_modifier(Modifier::UNDERLINED),
                ok: Style::new().fg(Color::Indexed(120)),
                warn: Style::new().fg(Color::Indexed(221)),
                gauge: Style::new().fg(Color::Indexed(81)).bg(Color::Indexed(236)),
                border: Style::new().fg(Color::Indexed(240)),
                helpers: &DARK_HELPERS,
                finding: Style::new()
                    .fg(Color::White)
                    .bg(Color::Indexed(124))
                    .add_modifier(bold),
                freedom: [
                    Style::new().fg(Color::Indexed(120)),
                    Style::new().fg(Color::Indexed(150)),
                    Style::new().fg(Color::Indexed(186)),
                    Style::new().fg(Color::Indexed(221)).add_modifier(bold),
                    Style::new()
                        .fg(Color::White)
                        .bg(Color::Indexed(160))
                        .add_modifier(bold),
                ],
            },
            ThemeKind::Light => Theme {
                kind,
                base: Style::new(),
                title: Style::new().fg(Color::Indexed(24)).add_modifier(bold),
                dim: Style::new().fg(Color::Indexed(242)),
                header_cell: Style::new().fg(Color::Indexed(236)).add_modifier(bold),
                tab: Style::new().fg(Color::Indexed(242)),
                tab_active: Style::new()
                    .fg(Color::White)
                    .bg(Color::Indexed(24))
                    .add_modifier(bold),
                selected: Style::new().bg(Color::Indexed(253)).add_modifier(bold),
                related: Style::new().add_modifier(bold),
                paused: Style::new()
                    .fg(Color::White)
                    .bg(Color::Indexed(130))
                    .add_modifier(bold),
                error: Style::new().fg(Color::Indexed(160)),
                error_span: Style::new()
                    .fg(Color::White)
                    .bg(Color::Indexed(160))
                    .add_modifier(Modifier::UNDERLINED),
                ok: Style::new().fg(Color::Indexed(28)),
                warn: Style::new().fg(Color::Indexed(130)),
                gauge: Style::new().fg(Color::Indexed(24)).bg(Color::Indexed(254)),
                border: Style::new().fg(Color::Indexed(248)),
                helpers: &LIGHT_HELPERS,
                finding: Style::new()
                    .fg(Color::White)
                    .bg(Color::Indexed(124))
                    .add_modifier(bold),
                freedom: [
                    Style::new().fg(Color::Indexed(28)),
                    Style::new().fg(Color::Indexed(64)),
                    Style::new().fg(Color::Indexed(100)),
                    Style::new().fg(Color::Indexed(130)).add_modifier(bold),
                    Style::new()
                        .fg(Color::White)
                        .bg(Color::Indexed(160))
                        .add_modifier(bold),
                ],
            },
            ThemeKind::Ansi16 => Theme {
                kind,
                base: Style::new(),
                title: Style::new().fg(Color::Cyan).add_modifier(bold),
                dim: Style::new().fg(Color::DarkGray),
                header_cell: Style::new().add_modifier(bold),
                tab: Style::new().fg(Color::DarkGray),
                tab_active: Style::new()
                    .fg(Color::Black)
                    .bg(Color::Cyan)
                    .add_modifier(bold),
                selected: Style::new().add_modifier(Modifier::REVERSED),
                related: Style::new().add_modifier(bold),
                paused: Style::new()
                    .fg(Color::Black)
                    .bg(Color::Yellow)
                    .add_modifier(bold),
                error: Style::new().fg(Color::Red),
                error_span: Style::new()
                    .fg(Color::White)
                    .bg(Color::Red)
                    .add_modifier(Modifier::UNDERLINED),
                ok: Style::new().fg(Color::Green),
                warn: Style::new().fg(Color::Yellow),
                gauge: Style::new().fg(Color::Cyan).bg(Color::Black),
                border: Style::new().fg(Color::DarkGray),
                helpers: &ANSI_HELPERS,
                finding: Style::new()
                    .fg(Color::White)
                    .bg(Color::Red)
                    .add_modifier(bold),
                freedom: [
                    Style::new().fg(Color::Green),
                    Style::new().fg(Color::Green),
                    Style::new().fg(Color::Yellow),
                    Style::new().fg(Color::Yellow).add_modifier(bold),
                    Style::new()
                        .fg(Color::White)
                        .bg(Color::Red)
                        .add_modifier(bold),
                ],
            },
            ThemeKind::Mono => Theme {
                kind,
                base: Style::new(),
                title: Style::new().add_modifier(bold),
                dim: Style::new(),
                header_cell: Style::new().add_modifier(bold | Modifier::UNDERLINED),
                tab: Style::new(),
                tab_active: Style::new().add_modifier(Modifier::REVERSED),
                selected: Style::new().add_modifier(Modifier::REVERSED),
                related: Style::new().add_modifier(bold),
                paused: Style::new().add_modifier(Modifier::REVERSED | bold),
                error: Style::new().add_modifier(bold),
                error_span: Style::new().add_modifier(Modifier::UNDERLINED | Modifier::REVERSED),
                ok: Style::new(),
                warn: Style::new().add_modifier(bold),
                gauge: Style::new().add_modifier(Modifier::REVERSED),
                border: Style::new(),
                helpers: &[],
                finding: Style::new().add_modifier(bold | Modifier::UNDERLINED),
                freedom: [
                    Style::new(),
                    Style::new(),
                    Style::new(),
                    Style::new().add_modifier(bold),
                    Style::new().add_modifier(bold | Modifier::REVERSED),
                ],
            },
        }
    }

    /// The style of a helper's name (and of the rows it created).
    pub fn helper(&self, name: &str) -> Style {
        if self.helpers.is_empty() {
            return Style::new();
        }
        Style::new().fg(self.helpers[helper_slot(name) % self.helpers.len()])
    }

    /// The style of a risk badge (and of the freedom it names).
    pub fn freedom(&self, l: Level) -> Style {
        self.freedom[match l {
            Level::Fixed => 0,
            Level::InPacket => 1,
            Level::Iface => 2,
            Level::InCmd => 3,
            Level::Full => 4,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term<'a>(term: &'a str, colorterm: Option<&'a str>) -> Terminal<'a> {
        Terminal {
            term: Some(term),
            colorterm,
        }
    }

    const XTERM256: Terminal<'static> = Terminal {
        term: Some("xterm-256color"),
        colorterm: None,
    };

    #[test]
    fn no_color_env_selects_monochrome() {
        let auto = |nc| ThemeKind::choose("auto", None, nc, XTERM256);
        assert_eq!(auto(Some("1")), ThemeKind::Mono);
        assert_eq!(auto(Some("")), ThemeKind::Dark);
        assert_eq!(
            ThemeKind::choose("never", Some("light"), None, XTERM256),
            ThemeKind::Mono
        );
        assert_eq!(
            ThemeKind::choose("always", Some("16"), Some("1"), XTERM256),
            ThemeKind::Ansi16
        );
        // NO_COLOR wins over a 16-colour terminal too.
        assert_eq!(
            ThemeKind::choose("auto", None, Some("1"), term("linux", None)),
            ThemeKind::Mono
        );
    }

    #[test]
    fn terminals_without_256_colours_get_the_16_colour_theme() {
        for t in ["xterm", "linux", "screen", "vt100", "xterm-color", "tmux"] {
            assert_eq!(
                ThemeKind::choose("auto", None, None, term(t, None)),
                ThemeKind::Ansi16,
                "{t}"
            );
        }
        assert_eq!(
            ThemeKind::choose("auto", None, None, Terminal::default()),
            ThemeKind::Ansi16
        );
        for (t, ct) in [
            ("xterm-256color", None),
            ("screen-256color", None),
            ("tmux-256color", None),
            ("xterm-direct", None),
            ("xterm", Some("truecolor")),
            ("linux", Some("24bit")),
        ] {
            assert_eq!(
                ThemeKind::choose("auto", None, None, term(t, ct)),
                ThemeKind::Dark,
                "{t} {ct:?}"
            );
        }
        // A named theme is what the admin asked for, whatever the terminal.
        assert_eq!(
            ThemeKind::choose("auto", Some("dark"), None, term("linux", None)),
            ThemeKind::Dark
        );
        assert_eq!(
            ThemeKind::choose("auto", Some("16"), None, XTERM256),
            ThemeKind::Ansi16
        );
    }

    /// Every colour a style of `t` can carry, helpers and risk levels included.
    fn colours(t: &Theme) -> Vec<Color> {
        let mut styles = vec![
            t.base,
            t.title,
            t.dim,
            t.header_cell,
            t.tab,
            t.tab_active,
            t.selected,
            t.related,
            t.paused,
            t.error,
            t.error_span,
            t.ok,
            t.warn,
            t.gauge,
            t.border,
            t.finding,
        ];
        styles.extend(t.freedom);
        for name in [
            "ftp", "sip", "irc", "tftp", "h323", "pptp", "sane", "snmp", "x-custom",
        ] {
            styles.push(t.helper(name));
        }
        styles
            .iter()
            .flat_map(|s| [s.fg, s.bg, s.underline_color])
            .flatten()
            .collect()
    }

    #[test]
    fn the_16_colour_theme_uses_only_the_16_ansi_colours() {
        use Color::*;
        // SGR 30–37 / 40–47 and their bright forms 90–97 / 100–107, as ratatui names them.
        let ansi = [
            Black,
            Red,
            Green,
            Yellow,
            Blue,
            Magenta,
            Cyan,
            Gray,
            DarkGray,
            LightRed,
            LightGreen,
            LightYellow,
            LightBlue,
            LightMagenta,
            LightCyan,
            White,
        ];
        let used = colours(&Theme::new(ThemeKind::Ansi16));
        assert!(!used.is_empty());
        for c in used {
            assert!(ansi.contains(&c), "{c:?} is not one of the 16 ANSI colours");
        }
        assert!(colours(&Theme::new(ThemeKind::Mono)).is_empty());
        // The dark theme does use the 256-colour palette (what 16-colour terminals lack).
        assert!(colours(&Theme::new(ThemeKind::Dark))
            .iter()
            .any(|c| matches!(c, Indexed(_))));
    }

    #[test]
    fn helpers_get_distinct_colours() {
        let t = Theme::new(ThemeKind::Dark);
        let names = ["ftp", "sip", "irc", "tftp"];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(t.helper(a), t.helper(b), "{a} vs {b}");
            }
        }
        assert_eq!(Theme::new(ThemeKind::Mono).helper("ftp"), Style::new());
    }
}
