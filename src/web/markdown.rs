//! Incident updates are Markdown written by operators and shown to the
//! public, so they are rendered with pulldown-cmark under three rules: raw
//! HTML is shown as text (escaped), links keep only `http`, `https`,
//! `mailto` and relative targets, and images become links (a page loads
//! nothing from another origin; the CSP would block it anyway).

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd, html};

/// `text` as safe HTML.
pub fn to_html(text: &str) -> String {
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(text, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
            Event::Start(Tag::Link { link_type, dest_url: safe_url(dest_url), title, id })
        }
        Event::Start(Tag::Image { dest_url, title, id, .. }) => {
            Event::Start(Tag::Link { link_type: LinkType::Inline, dest_url: safe_url(dest_url), title, id })
        }
        Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
        other => other,
    });
    let mut out = String::with_capacity(text.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

/// `url` when its scheme is harmless, else an empty (inert) link.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim_start().to_ascii_lowercase();
    let scheme = lower.split_once(':').map(|(scheme, _)| scheme).filter(|scheme| !scheme.contains(['/', '?', '#']));
    match scheme {
        None | Some("http" | "https" | "mailto") => url,
        Some(_) => CowStr::Borrowed(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_rendered_and_html_escaped() {
        let html = to_html("**Fixed** the <script>alert(1)</script> [db](https://db.example/x) `code`");
        assert!(html.contains("<strong>Fixed</strong>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(html.contains("<a href=\"https://db.example/x\">db</a>"), "{html}");
        assert!(html.contains("<code>code</code>"), "{html}");
        let block = to_html("<div onclick=\"x()\">hi</div>\n\nnext");
        assert!(!block.contains("<div"), "{block}");
    }

    #[test]
    fn dangerous_links_and_images_are_defused() {
        let html = to_html("[x](javascript:alert(1)) [y](JaVaScript:alert(1)) ![logo](https://cdn.example/a.png)");
        assert!(!html.to_lowercase().contains("javascript"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("<a href=\"https://cdn.example/a.png\">logo</a>"), "{html}");
        assert!(to_html("[rel](/status/x#y)").contains("href=\"/status/x#y\""));
    }
}
