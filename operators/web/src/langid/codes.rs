//! Language codes: fastText lid.176 labels to ISO 639-3, and the language
//! a URL path segment hints at (`de`, `pt-br`, `deu`, or a country code
//! such as `at` or `jp`).

/// ISO 639-1 → ISO 639-3 (macrolanguage codes where one exists, as WebFAQ
/// writes them: `zho`, `ara`, `fas`, `msa`).
const ISO1_TO_3: &[(&str, &str)] = &[
    ("af", "afr"),
    ("am", "amh"),
    ("an", "arg"),
    ("ar", "ara"),
    ("as", "asm"),
    ("av", "ava"),
    ("az", "aze"),
    ("ba", "bak"),
    ("be", "bel"),
    ("bg", "bul"),
    ("bh", "bih"),
    ("bn", "ben"),
    ("bo", "bod"),
    ("br", "bre"),
    ("bs", "bos"),
    ("ca", "cat"),
    ("ce", "che"),
    ("co", "cos"),
    ("cs", "ces"),
    ("cv", "chv"),
    ("cy", "cym"),
    ("da", "dan"),
    ("de", "deu"),
    ("dv", "div"),
    ("el", "ell"),
    ("en", "eng"),
    ("eo", "epo"),
    ("es", "spa"),
    ("et", "est"),
    ("eu", "eus"),
    ("fa", "fas"),
    ("fi", "fin"),
    ("fr", "fra"),
    ("fy", "fry"),
    ("ga", "gle"),
    ("gd", "gla"),
    ("gl", "glg"),
    ("gn", "grn"),
    ("gu", "guj"),
    ("gv", "glv"),
    ("he", "heb"),
    ("hi", "hin"),
    ("hr", "hrv"),
    ("ht", "hat"),
    ("hu", "hun"),
    ("hy", "hye"),
    ("ia", "ina"),
    ("id", "ind"),
    ("ie", "ile"),
    ("io", "ido"),
    ("is", "isl"),
    ("it", "ita"),
    ("ja", "jpn"),
    ("jv", "jav"),
    ("ka", "kat"),
    ("kk", "kaz"),
    ("km", "khm"),
    ("kn", "kan"),
    ("ko", "kor"),
    ("ku", "kur"),
    ("kv", "kom"),
    ("kw", "cor"),
    ("ky", "kir"),
    ("la", "lat"),
    ("lb", "ltz"),
    ("li", "lim"),
    ("lo", "lao"),
    ("lt", "lit"),
    ("lv", "lav"),
    ("mg", "mlg"),
    ("mk", "mkd"),
    ("ml", "mal"),
    ("mn", "mon"),
    ("mr", "mar"),
    ("ms", "msa"),
    ("mt", "mlt"),
    ("my", "mya"),
    ("nb", "nob"),
    ("ne", "nep"),
    ("nl", "nld"),
    ("nn", "nno"),
    ("no", "nor"),
    ("oc", "oci"),
    ("or", "ori"),
    ("os", "oss"),
    ("pa", "pan"),
    ("pl", "pol"),
    ("ps", "pus"),
    ("pt", "por"),
    ("qu", "que"),
    ("rm", "roh"),
    ("ro", "ron"),
    ("ru", "rus"),
    ("sa", "san"),
    ("sc", "srd"),
    ("sd", "snd"),
    ("sh", "hbs"),
    ("si", "sin"),
    ("sk", "slk"),
    ("sl", "slv"),
    ("so", "som"),
    ("sq", "sqi"),
    ("sr", "srp"),
    ("su", "sun"),
    ("sv", "swe"),
    ("sw", "swa"),
    ("ta", "tam"),
    ("te", "tel"),
    ("tg", "tgk"),
    ("th", "tha"),
    ("tk", "tuk"),
    ("tl", "tgl"),
    ("tr", "tur"),
    ("tt", "tat"),
    ("ug", "uig"),
    ("uk", "ukr"),
    ("ur", "urd"),
    ("uz", "uzb"),
    ("vi", "vie"),
    ("vo", "vol"),
    ("wa", "wln"),
    ("yi", "yid"),
    ("yo", "yor"),
    ("zh", "zho"),
];

/// Country code → its main language (ISO 639-1), for URL paths such as
/// `/at/` or `/jp/` (after CLDR's likely-subtags data).
const TERRITORY_LANGUAGE: &[(&str, &str)] = &[
    ("ae", "ar"),
    ("ar", "es"),
    ("at", "de"),
    ("au", "en"),
    ("bd", "bn"),
    ("be", "nl"),
    ("bo", "es"),
    ("br", "pt"),
    ("by", "be"),
    ("ca", "en"),
    ("ch", "de"),
    ("cl", "es"),
    ("cn", "zh"),
    ("co", "es"),
    ("cz", "cs"),
    ("dk", "da"),
    ("dz", "ar"),
    ("ec", "es"),
    ("ee", "et"),
    ("eg", "ar"),
    ("gb", "en"),
    ("ge", "ka"),
    ("gr", "el"),
    ("hk", "zh"),
    ("ie", "en"),
    ("il", "he"),
    ("in", "hi"),
    ("iq", "ar"),
    ("ir", "fa"),
    ("jo", "ar"),
    ("jp", "ja"),
    ("ke", "sw"),
    ("kr", "ko"),
    ("kz", "kk"),
    ("lk", "si"),
    ("ma", "ar"),
    ("mx", "es"),
    ("my", "ms"),
    ("ng", "en"),
    ("np", "ne"),
    ("nz", "en"),
    ("pe", "es"),
    ("ph", "tl"),
    ("pk", "ur"),
    ("py", "es"),
    ("rs", "sr"),
    ("sa", "ar"),
    ("se", "sv"),
    ("si", "sl"),
    ("tn", "ar"),
    ("tw", "zh"),
    ("ua", "uk"),
    ("uk", "en"),
    ("us", "en"),
    ("uy", "es"),
    ("ve", "es"),
    ("vn", "vi"),
    ("za", "en"),
];

/// Old or alternative 639-1 codes seen in URLs and `lang` attributes.
const ALIASES: &[(&str, &str)] = &[
    ("iw", "he"),
    ("in", "id"),
    ("ji", "yi"),
    ("nb", "no"),
    ("fil", "tl"),
];

/// The ISO 639-3 code of a fastText label (`__label__de` → `deu`); labels
/// that are already three letters (`ceb`, `yue`) stay as they are.
pub fn iso3(label: &str) -> String {
    let code = label.strip_prefix("__label__").unwrap_or(label);
    ISO1_TO_3
        .iter()
        .find(|(two, _)| *two == code)
        .map(|(_, three)| (*three).to_string())
        .unwrap_or_else(|| code.to_string())
}

/// The fastText label (without `__label__`) of a 639-1 or 639-3 code.
fn label_of(code: &str) -> Option<String> {
    let code = ALIASES
        .iter()
        .find(|(a, _)| *a == code)
        .map(|(_, c)| *c)
        .unwrap_or(code);
    match code.len() {
        2 => ISO1_TO_3
            .iter()
            .any(|(two, _)| *two == code)
            .then(|| code.to_string()),
        3 => Some(
            ISO1_TO_3
                .iter()
                .find(|(_, three)| *three == code)
                .map(|(two, _)| (*two).to_string())
                .unwrap_or_else(|| code.to_string()),
        ),
        _ => None,
    }
}

/// The fastText labels a URL's first or second path segment hints at:
/// `xx-yy`/`xx_yy` (language and region), `xxx` (ISO 639-3), or `xx` as a
/// language or a country code. Empty when the path says nothing.
pub fn url_hints(url: &str) -> Vec<String> {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let path = after_scheme.split_once('/').map_or("", |(_, p)| p);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut hints = Vec::new();
    for seg in path.split('/').filter(|s| !s.is_empty()).take(2) {
        let seg = seg.to_ascii_lowercase();
        if !seg
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_')
        {
            continue;
        }
        let (lang, region) = match seg.split_once(['-', '_']) {
            Some((l, r)) => (l, Some(r)),
            None => (seg.as_str(), None),
        };
        if let Some(r) = region
            && !(2..=4).contains(&r.len())
        {
            continue;
        }
        if lang.len() == 2 || lang.len() == 3 {
            if let Some(l) = label_of(lang)
                && (lang.len() == 2 || is_iso3(lang))
            {
                hints.push(l);
            }
            if lang.len() == 2
                && region.is_none()
                && let Some((_, l)) = TERRITORY_LANGUAGE.iter().find(|(t, _)| *t == lang)
            {
                hints.push((*l).to_string());
            }
        }
        if !hints.is_empty() {
            break;
        }
    }
    hints.dedup();
    hints
}

/// Whether a three-letter path segment is a language code we know (and not
/// `faq`, `api`, `app`, ...).
fn is_iso3(code: &str) -> bool {
    ISO1_TO_3.iter().any(|(_, three)| *three == code) || EXTRA_LABELS.contains(&code)
}

/// lid.176's own three-letter labels.
const EXTRA_LABELS: &[&str] = &[
    "als", "arz", "ast", "azb", "bar", "bcl", "bpy", "bxr", "cbk", "ceb", "ckb", "diq", "dsb",
    "dty", "eml", "frr", "gom", "hif", "hsb", "ilo", "jbo", "krc", "lez", "lmo", "lrc", "mai",
    "mhr", "min", "mrj", "mwl", "myv", "mzn", "nah", "nap", "nds", "pam", "pfl", "pms", "pnb",
    "rue", "sah", "scn", "sco", "tyv", "vec", "vep", "vls", "war", "wuu", "xal", "xmf", "yue",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_become_iso_639_3() {
        assert_eq!(iso3("__label__de"), "deu");
        assert_eq!(iso3("__label__zh"), "zho");
        assert_eq!(iso3("__label__ceb"), "ceb");
    }

    #[test]
    fn url_hints_from_the_first_two_segments() {
        assert_eq!(url_hints("https://x.com/de/faq"), ["de"]);
        assert_eq!(url_hints("https://x.com/shop/pt-BR/faq.html"), ["pt"]);
        assert_eq!(url_hints("https://x.com/zh_CN/"), ["zh"]);
        assert_eq!(url_hints("https://x.com/deu/faq"), ["de"]);
        // A country code: Austria speaks German.
        assert_eq!(url_hints("https://x.com/at/hilfe"), ["de"]);
        // Both a language (Catalan) and a country (Canada).
        assert_eq!(url_hints("https://x.com/ca/"), ["ca", "en"]);
        assert!(url_hints("https://x.com/faq/help").is_empty());
        assert!(url_hints("https://x.com/a/b/de/").is_empty());
        assert!(url_hints("https://x.com/").is_empty());
        assert!(url_hints("https://x.com/de-verylong/").is_empty());
    }
}
