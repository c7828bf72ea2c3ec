//! The writing system of a text: the ISO 15924 code of the script most of
//! its letters are in (`Latn`, `Cyrl`, `Arab`, `Hani`, `Jpan`, `Kore`, ...).

/// The script of one character, if it is a letter of a script we name.
fn script_of(c: char) -> Option<&'static str> {
    let u = c as u32;
    Some(match u {
        0x41..=0x5A | 0x61..=0x7A | 0xC0..=0x24F | 0x1E00..=0x1EFF => "Latn",
        0x370..=0x3FF | 0x1F00..=0x1FFF => "Grek",
        0x400..=0x52F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => "Cyrl",
        0x530..=0x58F => "Armn",
        0x590..=0x5FF => "Hebr",
        0x600..=0x6FF | 0x750..=0x77F | 0x8A0..=0x8FF | 0xFB50..=0xFDFF | 0xFE70..=0xFEFF => "Arab",
        0x700..=0x74F => "Syrc",
        0x780..=0x7BF => "Thaa",
        0x900..=0x97F => "Deva",
        0x980..=0x9FF => "Beng",
        0xA00..=0xA7F => "Guru",
        0xA80..=0xAFF => "Gujr",
        0xB00..=0xB7F => "Orya",
        0xB80..=0xBFF => "Taml",
        0xC00..=0xC7F => "Telu",
        0xC80..=0xCFF => "Knda",
        0xD00..=0xD7F => "Mlym",
        0xD80..=0xDFF => "Sinh",
        0xE00..=0xE7F => "Thai",
        0xE80..=0xEFF => "Laoo",
        0xF00..=0xFFF => "Tibt",
        0x1000..=0x109F => "Mymr",
        0x10A0..=0x10FF | 0x2D00..=0x2D2F => "Geor",
        0x1100..=0x11FF | 0x3130..=0x318F | 0xAC00..=0xD7AF => "Hang",
        0x1200..=0x139F => "Ethi",
        0x1780..=0x17FF => "Khmr",
        0x1800..=0x18AF => "Mong",
        0x3040..=0x309F => "Hira",
        0x30A0..=0x30FF | 0x31F0..=0x31FF => "Kana",
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F => "Hani",
        _ => return None,
    })
}

/// The dominant script of `text`, or `Zyyy` (common) when it has no
/// letters. Han mixed with kana is Japanese (`Jpan`), with Hangul Korean
/// (`Kore`).
pub fn detect(text: &str) -> &'static str {
    detect_parts(&[text])
}

/// [`detect`] over several texts taken together (a question and its
/// answer), without joining them.
pub fn detect_parts(texts: &[&str]) -> &'static str {
    let mut counts: Vec<(&'static str, usize)> = Vec::with_capacity(4);
    for c in texts.iter().flat_map(|t| t.chars()) {
        if let Some(s) = script_of(c) {
            match counts.iter_mut().find(|(n, _)| *n == s) {
                Some((_, k)) => *k += 1,
                None => counts.push((s, 1)),
            }
        }
    }
    let count = |s: &str| counts.iter().find(|(n, _)| *n == s).map_or(0, |(_, k)| *k);
    let (kana, han, hangul) = (count("Hira") + count("Kana"), count("Hani"), count("Hang"));
    if kana > 0 {
        counts.push(("Jpan", kana + han));
    } else if hangul > 0 {
        counts.push(("Kore", hangul + han));
    }
    counts
        .iter()
        .filter(|(n, _)| !matches!(*n, "Hira" | "Kana" | "Hang") || kana + hangul == 0)
        .max_by_key(|(_, k)| *k)
        .map_or("Zyyy", |(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_of_common_texts() {
        assert_eq!(detect("Wie lange dauert es?"), "Latn");
        assert_eq!(detect("Сколько это стоит?"), "Cyrl");
        assert_eq!(detect("كم يكلف؟"), "Arab");
        assert_eq!(detect("यह कितने का है?"), "Deva");
        assert_eq!(detect("这个多少钱？"), "Hani");
        assert_eq!(detect("これはいくらですか？"), "Jpan");
        assert_eq!(detect("東京はどこですか"), "Jpan");
        assert_eq!(detect("이것은 얼마입니까?"), "Kore");
        assert_eq!(detect("ราคาเท่าไหร่"), "Thai");
        assert_eq!(detect("1234 ?!"), "Zyyy");
        // Latin brand names in Cyrillic text.
        assert_eq!(detect("Как установить Windows на ноутбук?"), "Cyrl");
    }
}
