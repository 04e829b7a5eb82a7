//! Badges: a flat two-part SVG ("label | message") and the same content as
//! shields.io endpoint JSON.
//!
//! The SVG is drawn here rather than by a crate: the badge crates on
//! crates.io either bundle a font and a text shaper (megabytes for two words)
//! or are unmaintained. Text width is estimated from a table of Verdana's
//! advance widths at 11px (Verdana is the font badges are conventionally set
//! in); each `<text>` carries `textLength`, so a viewer without Verdana
//! stretches its fallback font to the same box instead of overflowing it.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The colours badges use, named as the shields endpoint schema names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    /// Healthy.
    BrightGreen,
    /// Good.
    Green,
    /// Fair.
    YellowGreen,
    /// Warning.
    Yellow,
    /// Bad.
    Orange,
    /// Failing.
    Red,
    /// Neutral information (maintenance).
    Blue,
    /// Unknown or paused.
    LightGrey,
}

impl Color {
    /// The shields.io colour name.
    pub fn name(self) -> &'static str {
        match self {
            Color::BrightGreen => "brightgreen",
            Color::Green => "green",
            Color::YellowGreen => "yellowgreen",
            Color::Yellow => "yellow",
            Color::Orange => "orange",
            Color::Red => "red",
            Color::Blue => "blue",
            Color::LightGrey => "lightgrey",
        }
    }

    /// The fill used in checkit's own SVG (shields' palette values).
    pub fn hex(self) -> &'static str {
        match self {
            Color::BrightGreen => "#4c1",
            Color::Green => "#97ca00",
            Color::YellowGreen => "#a4a61d",
            Color::Yellow => "#dfb317",
            Color::Orange => "#fe7d37",
            Color::Red => "#e05d44",
            Color::Blue => "#007ec6",
            Color::LightGrey => "#9f9f9f",
        }
    }

    /// Light backgrounds get dark text so the message stays readable.
    fn text(self) -> (&'static str, &'static str) {
        match self {
            Color::BrightGreen | Color::Green | Color::YellowGreen | Color::Yellow => ("#222", "#fff"),
            _ => ("#fff", "#010101"),
        }
    }
}

/// One badge.
#[derive(Debug, Clone, PartialEq)]
pub struct Badge {
    /// Left part.
    pub label: String,
    /// Right part.
    pub message: String,
    /// Right part's colour.
    pub color: Color,
}

/// Verdana advance widths at 11px for ASCII 0x20..=0x7E, in hundredths of a
/// pixel (units-per-em 2048 scaled by 11/2048).
const WIDTHS: [u16; 95] = [
    387, 433, 505, 922, 699, 1184, 799, 295, 484, 484, 699, 922, 400, 484, 400, 656, // ' '..'/'
    699, 699, 699, 699, 699, 699, 699, 699, 699, 699, 484, 484, 922, 922, 922, 600, // '0'..'?'
    1100, 752, 755, 768, 847, 695, 633, 852, 827, 463, 495, 764, 615, 927, 823, 869, // '@'..'O'
    667, 869, 768, 752, 665, 805, 752, 1094, 754, 665, 754, 484, 656, 484, 922, 699, // 'P'..'_'
    699, 660, 685, 574, 685, 655, 387, 685, 696, 302, 379, 651, 302, 1070, 696, 668, // '`'..'o'
    685, 685, 469, 573, 433, 696, 651, 900, 651, 651, 565, 698, 484, 698, 922, // 'p'..'~'
];

/// Width of anything outside the table: about an average lowercase letter.
const FALLBACK_WIDTH: u16 = 680;

/// The estimated width of `text` in Verdana 11px, in pixels.
pub fn text_width(text: &str) -> f64 {
    let hundredths: u64 = text
        .chars()
        .map(|c| {
            let code = u32::from(c);
            if (0x20..=0x7e).contains(&code) {
                WIDTHS.get((code - 0x20) as usize).copied().unwrap_or(FALLBACK_WIDTH)
            } else {
                FALLBACK_WIDTH
            }
        })
        .map(u64::from)
        .sum();
    hundredths as f64 / 100.0
}

/// Escapes text for SVG content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' | '\r' => out.push(c),
            // Other control characters are not allowed in XML.
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Horizontal padding on each side of each part.
const PAD: f64 = 6.0;

/// The shields.io endpoint answer (<https://shields.io/badges/endpoint-badge>):
/// exactly the schema's keys, no others, since shields rejects unknown ones.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Shields {
    /// Always 1.
    pub schema_version: u8,
    /// Left text.
    pub label: String,
    /// Right text (never empty).
    pub message: String,
    /// Right colour.
    pub color: &'static str,
    /// True for "no such check" answers.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
    /// How long shields may cache (it never caches for less than 300 s).
    pub cache_seconds: u32,
}

impl Badge {
    /// A badge.
    pub fn new(label: impl Into<String>, message: impl Into<String>, color: Color) -> Badge {
        Badge { label: label.into(), message: message.into(), color }
    }

    /// The flat SVG badge.
    pub fn svg(&self) -> String {
        let label_text = text_width(&self.label);
        let message_text = text_width(&self.message);
        let label_width = (label_text + 2.0 * PAD).round();
        let message_width = (message_text + 2.0 * PAD).round();
        let width = label_width + message_width;
        let label = escape(&self.label);
        let message = escape(&self.message);
        let (message_fill, message_shadow) = self.color.text();
        let label_x = label_width / 2.0;
        let message_x = label_width + message_width / 2.0;
        format!(
            concat!(
                r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{l}: {m}">"##,
                r##"<title>{l}: {m}</title>"##,
                r##"<linearGradient id="g" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>"##,
                r##"<clipPath id="c"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath>"##,
                r##"<g clip-path="url(#c)"><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{mw}" height="20" fill="{color}"/><rect width="{w}" height="20" fill="url(#g)"/></g>"##,
                r##"<g text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">"##,
                r##"<text x="{lx}" y="15" fill="#010101" fill-opacity=".3" textLength="{lt}" lengthAdjust="spacingAndGlyphs">{l}</text>"##,
                r##"<text x="{lx}" y="14" fill="#fff" textLength="{lt}" lengthAdjust="spacingAndGlyphs">{l}</text>"##,
                r##"<text x="{mx}" y="15" fill="{ms}" fill-opacity=".3" textLength="{mt}" lengthAdjust="spacingAndGlyphs">{m}</text>"##,
                r##"<text x="{mx}" y="14" fill="{mf}" textLength="{mt}" lengthAdjust="spacingAndGlyphs">{m}</text>"##,
                r##"</g></svg>"##
            ),
            w = width,
            lw = label_width,
            mw = message_width,
            lx = label_x,
            mx = message_x,
            lt = label_text.round(),
            mt = message_text.round(),
            l = label,
            m = message,
            color = self.color.hex(),
            mf = message_fill,
            ms = message_shadow,
        )
    }

    /// The shields.io endpoint JSON.
    pub fn shields(&self) -> Shields {
        Shields {
            schema_version: 1,
            label: self.label.clone(),
            message: if self.message.is_empty() { "none".into() } else { self.message.clone() },
            color: self.color.name(),
            is_error: false,
            cache_seconds: 300,
        }
    }

    /// The badge for a check state (`up`, `down`, `paused`, `maintenance`, `unknown`).
    pub fn status(label: &str, state: &str) -> Badge {
        let color = match state {
            "up" => Color::BrightGreen,
            "down" => Color::Red,
            "maintenance" => Color::Blue,
            _ => Color::LightGrey,
        };
        Badge::new(label, state, color)
    }

    /// The badge for an uptime ratio (0..=1) over `window`; `None` means no data.
    pub fn uptime(label: &str, window: &str, ratio: Option<f64>) -> Badge {
        let label = format!("{label} {window}");
        let Some(ratio) = ratio.filter(|ratio| ratio.is_finite()) else {
            return Badge::new(label, "no data", Color::LightGrey);
        };
        let percent = ratio.clamp(0.0, 1.0) * 100.0;
        let color = match percent {
            p if p >= 99.9 => Color::BrightGreen,
            p if p >= 99.0 => Color::Green,
            p if p >= 97.0 => Color::YellowGreen,
            p if p >= 95.0 => Color::Yellow,
            p if p >= 90.0 => Color::Orange,
            _ => Color::Red,
        };
        Badge::new(label, format_percent(ratio), color)
    }

    /// The badge for an average response time in milliseconds over `window`.
    pub fn response_time(label: &str, window: &str, millis: Option<f64>) -> Badge {
        let label = format!("{label} {window}");
        let Some(millis) = millis.filter(|millis| millis.is_finite() && *millis >= 0.0) else {
            return Badge::new(label, "no data", Color::LightGrey);
        };
        let color = match millis {
            m if m < 200.0 => Color::BrightGreen,
            m if m < 500.0 => Color::Green,
            m if m < 1000.0 => Color::Yellow,
            m if m < 2000.0 => Color::Orange,
            _ => Color::Red,
        };
        Badge::new(label, format_millis(millis), color)
    }

    /// The badge for the days left on the certificate; negative is expired.
    pub fn cert_expiry(label: &str, days: Option<f64>) -> Badge {
        let Some(days) = days.filter(|days| days.is_finite()) else {
            return Badge::new(label, "no certificate", Color::LightGrey);
        };
        if days < 0.0 {
            return Badge::new(label, "expired", Color::Red);
        }
        let whole = days.floor() as i64;
        let color = match whole {
            d if d < 7 => Color::Red,
            d if d < 14 => Color::Orange,
            d if d < 30 => Color::Yellow,
            _ => Color::BrightGreen,
        };
        let message = if whole == 1 { "1 day".to_string() } else { format!("{whole} days") };
        Badge::new(label, message, color)
    }

    /// The answer for a badge of something that does not exist or is not public.
    pub fn not_found(label: &str) -> Badge {
        Badge::new(label, "not found", Color::LightGrey)
    }
}

/// A ratio as a percentage, never rounded up to a figure it did not reach
/// (99.996% shows as 99.99%, not 100%).
pub fn format_percent(ratio: f64) -> String {
    let hundredths = (ratio.clamp(0.0, 1.0) * 10_000.0).floor() / 100.0;
    let text = format!("{hundredths:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// Milliseconds as `123 ms` or `1.23 s`.
pub fn format_millis(millis: f64) -> String {
    if millis < 1000.0 { format!("{} ms", millis.round() as u64) } else { format!("{:.2} s", millis / 1000.0) }
}

/// How a badge may be cached: public badges by anyone (camo, shields),
/// badges shown only to logged-in users by the browser alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Anyone may see it.
    Public,
    /// Only the logged-in visitor.
    Private,
}

/// The SVG answer, with a short cache life and a validator: the data moves
/// with every check run, so caches keep a badge one minute and then revalidate.
pub fn svg_response(badge: &Badge, status: StatusCode, audience: Audience, request: &HeaderMap) -> Response {
    respond(badge.svg(), "image/svg+xml; charset=utf-8", status, audience, request)
}

/// The shields endpoint answer.
pub fn shields_response(badge: &Badge, status: StatusCode, audience: Audience, request: &HeaderMap) -> Response {
    let mut shields = badge.shields();
    shields.is_error = status != StatusCode::OK;
    let body = serde_json::to_string(&shields).unwrap_or_default();
    respond(body, "application/json", status, audience, request)
}

fn respond(
    body: String,
    content_type: &'static str,
    status: StatusCode,
    audience: Audience,
    request: &HeaderMap,
) -> Response {
    use sha2::Digest;
    let etag = format!("\"{}\"", hex::encode(&sha2::Sha256::digest(body.as_bytes())[..8]));
    let cache = match audience {
        Audience::Public => "public, max-age=60, must-revalidate",
        Audience::Private => "private, max-age=60, must-revalidate",
    };
    let matches = request.get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()) == Some(etag.as_str());
    let mut response = if matches && status == StatusCode::OK {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (status, body).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    // Badges are embedded from other sites (READMEs, wikis).
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_follow_the_table() {
        assert_eq!(text_width(""), 0.0);
        assert!((text_width("up") - (6.96 + 6.85)).abs() < 1e-9);
        assert!(text_width("WWW") > text_width("iii") * 3.0);
        assert_eq!(text_width("é"), 6.8, "outside ASCII: the fallback width");
    }

    #[test]
    fn percentages_never_round_up() {
        assert_eq!(format_percent(1.0), "100%");
        assert_eq!(format_percent(0.99996), "99.99%");
        assert_eq!(format_percent(0.999), "99.9%");
        assert_eq!(format_percent(0.5), "50%");
        assert_eq!(format_percent(0.0), "0%");
        assert_eq!(format_percent(2.0), "100%");
    }

    #[test]
    fn colours_by_threshold() {
        assert_eq!(Badge::uptime("api", "30d", Some(0.9995)).color, Color::BrightGreen);
        assert_eq!(Badge::uptime("api", "30d", Some(0.85)).color, Color::Red);
        assert_eq!(Badge::uptime("api", "30d", None).message, "no data");
        assert_eq!(Badge::response_time("api", "24h", Some(150.4)).message, "150 ms");
        assert_eq!(Badge::response_time("api", "24h", Some(2500.0)).message, "2.50 s");
        assert_eq!(Badge::cert_expiry("cert", Some(3.5)).color, Color::Red);
        assert_eq!(Badge::cert_expiry("cert", Some(1.2)).message, "1 day");
        assert_eq!(Badge::cert_expiry("cert", Some(-1.0)).message, "expired");
        assert_eq!(Badge::status("api", "down").color, Color::Red);
    }

    #[test]
    fn svg_is_escaped_and_sized() {
        let svg = Badge::new("a<b", "x & y", Color::Red).svg();
        assert!(svg.contains("a&lt;b: x &amp; y"));
        assert!(!svg.contains("a<b"));
        let width: f64 = svg.split("width=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
        let expected = (text_width("a<b") + 12.0).round() + (text_width("x & y") + 12.0).round();
        assert_eq!(width, expected);
    }

    #[test]
    fn shields_has_exactly_the_schema_keys() {
        let json = serde_json::to_value(Badge::uptime("api", "7d", Some(1.0)).shields()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"schemaVersion": 1, "label": "api 7d", "message": "100%", "color": "brightgreen", "cacheSeconds": 300})
        );
    }
}
