//! `-o extended`: conntrack's `-o extended` line, the `text` line with the layer-3 name
//! padded to 8 and its number in front (`ipv4     2 tcp      6 …`). Expectations print
//! as in `text` (conntrack's extended output changes nothing for them).

use super::view::FlowView;

/// One `conntrack -L -o extended` line (no trailing newline).
pub fn flow(v: &FlowView) -> String {
    let l3 = if v.family == "ipv6" { 10 } else { 2 };
    format!("{:<8} {l3} {}", v.family, super::text::flow(v))
}
