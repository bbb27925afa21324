//! Tokens of the filter language, with byte spans into the source so every error can
//! point at what it is about. Owns only splitting text into tokens; meaning is `parse`'s.

use super::FilterError;

/// A comparison operator between a field and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=` or `==` (also `in`, which reads better before a CIDR or a list).
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn text(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    LParen,
    RParen,
    /// `!` not followed by `=`.
    Bang,
    AndAnd,
    OrOr,
    Op(Op),
    /// `/pattern/` with `\/` unescaped to `/`.
    Regex(String),
    /// `"text"` with `\"` and `\\` unescaped.
    Quoted(String),
    /// Anything else up to whitespace or punctuation: fields, values, keywords, text.
    Word(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub pos: usize,
    pub len: usize,
}

/// Characters that end a word (and start punctuation tokens).
fn is_punct(c: char) -> bool {
    matches!(c, '(' | ')' | '!' | '=' | '<' | '>' | '&' | '|' | '"')
}

/// Split `src` into tokens.
pub fn tokens(src: &str) -> Result<Vec<Token>, FilterError> {
    let mut out = Vec::new();
    let b = src.as_bytes();
    let mut chars = src.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let next = b.get(i + 1).copied();
        let (kind, len) = match c {
            '(' => (Kind::LParen, 1),
            ')' => (Kind::RParen, 1),
            '!' if next == Some(b'=') => (Kind::Op(Op::Ne), 2),
            '!' => (Kind::Bang, 1),
            '&' if next == Some(b'&') => (Kind::AndAnd, 2),
            '|' if next == Some(b'|') => (Kind::OrOr, 2),
            '&' | '|' => {
                return Err(FilterError::new(
                    i,
                    1,
                    format!(
                        "unexpected '{c}'; use '{c}{c}' or '{}'",
                        if c == '&' { "and" } else { "or" }
                    ),
                ))
            }
            '=' if next == Some(b'=') => (Kind::Op(Op::Eq), 2),
            '=' => (Kind::Op(Op::Eq), 1),
            '<' if next == Some(b'=') => (Kind::Op(Op::Le), 2),
            '<' => (Kind::Op(Op::Lt), 1),
            '>' if next == Some(b'=') => (Kind::Op(Op::Ge), 2),
            '>' => (Kind::Op(Op::Gt), 1),
            '/' => {
                let (text, len) = delimited(src, i, '/', "regex")?;
                (Kind::Regex(text), len)
            }
            '"' => {
                let (text, len) = delimited(src, i, '"', "quote")?;
                (Kind::Quoted(text), len)
            }
            _ => {
                let end = src[i..]
                    .char_indices()
                    .find(|&(_, c)| c.is_whitespace() || is_punct(c))
                    .map_or(src.len(), |(j, _)| i + j);
                (Kind::Word(src[i..end].to_owned()), end - i)
            }
        };
        out.push(Token { kind, pos: i, len });
        while chars.peek().is_some_and(|&(j, _)| j < i + len) {
            chars.next();
        }
    }
    Ok(out)
}

/// Read `/…/` or `"…"` starting at `start`; returns the unescaped body and the byte length
/// including both delimiters. Inside, `\<delim>` is the delimiter itself; for quotes `\\`
/// is one backslash; for regexes every other escape is kept for the regex engine.
fn delimited(
    src: &str,
    start: usize,
    delim: char,
    what: &str,
) -> Result<(String, usize), FilterError> {
    let mut body = String::new();
    let mut it = src[start + 1..].char_indices();
    while let Some((j, c)) = it.next() {
        match c {
            '\\' => match it.next() {
                Some((_, n)) if n == delim => body.push(n),
                Some((_, '\\')) if delim == '"' => body.push('\\'),
                Some((_, n)) => {
                    body.push('\\');
                    body.push(n);
                }
                None => body.push('\\'),
            },
            c if c == delim => return Ok((body, j + 2)),
            c => body.push(c),
        }
    }
    Err(FilterError::new(
        start,
        src.len() - start,
        format!("unterminated {what}: missing closing '{delim}'"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Kind> {
        tokens(s).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn words_keep_cidrs_and_ipv6() {
        assert_eq!(
            kinds("src in fd00::/64 && !(dport>=1024)"),
            vec![
                Kind::Word("src".into()),
                Kind::Word("in".into()),
                Kind::Word("fd00::/64".into()),
                Kind::AndAnd,
                Kind::Bang,
                Kind::LParen,
                Kind::Word("dport".into()),
                Kind::Op(Op::Ge),
                Kind::Word("1024".into()),
                Kind::RParen,
            ]
        );
    }

    #[test]
    fn regex_and_quote_escapes() {
        assert_eq!(kinds(r"/a\/b\d/"), vec![Kind::Regex(r"a/b\d".into())]);
        assert_eq!(kinds(r#""x\"y""#), vec![Kind::Quoted("x\"y".into())]);
        let t = tokens("é=1").unwrap();
        assert_eq!((t[1].pos, t[1].len), (2, 1));
    }
}
