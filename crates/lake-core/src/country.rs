//! Country standardization (data contract, section 4).
//!
//! Source systems spell countries in many ways (`USA`, `U.S.A.`,
//! `États-Unis`, `Deutschland`, ` united   kingdom `...). Silver and the
//! streaming path must agree on one spelling, so this module is the single
//! implementation both use: [`standardize`] for one value and
//! [`standardized_country_name`] / [`country_code`] for Polars columns.
//!
//! Rules:
//! * the raw text is trimmed and inner whitespace runs (as defined by
//!   [`char::is_whitespace`]) are collapsed to one space;
//! * it is then matched case-insensitively (Unicode lowercase), ignoring
//!   dots, against an alias table holding, for every country, its English,
//!   French and native names, its ISO 3166-1 alpha-2 and alpha-3 codes and
//!   common short forms, with and without accents (no Unicode normalization
//!   dependency: the variants are listed explicitly);
//! * a match yields the canonical English short name and the alpha-2 code;
//! * a non-empty value that matches nothing keeps its trimmed, collapsed
//!   text (case kept) and has no code;
//! * a null or blank value becomes [`UNKNOWN_COUNTRY`] with no code.

use std::collections::HashMap;
use std::sync::LazyLock;

use polars::prelude::{
    Column, DataType, Expr, Field, IntoColumn, NewChunkedArray, PolarsResult, Schema, StringChunked,
};

/// A standardized country: canonical English name and ISO 3166-1 alpha-2 code when known.
///
/// `code` is `None` when the raw value is blank or not in the alias table, so
/// consumers can tell a recognised country from free text kept as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardCountry {
    /// Canonical English short name, the cleaned raw text, or [`UNKNOWN_COUNTRY`].
    pub name: String,
    /// ISO 3166-1 alpha-2 code, only for countries of the alias table.
    pub code: Option<&'static str>,
}

/// Name used when the country is null or empty.
///
/// A fixed marker (rather than null) keeps group-bys and joins on the
/// country column total, as the data contract requires.
pub const UNKNOWN_COUNTRY: &str = "Unknown";

/// One country of the alias table.
struct Country {
    /// Canonical English short name.
    name: &'static str,
    /// ISO 3166-1 alpha-2 code.
    alpha2: &'static str,
    /// ISO 3166-1 alpha-3 code.
    alpha3: &'static str,
    /// Other spellings: English, French and native names, short forms, with
    /// and without accents. The name and codes above are matched too.
    aliases: &'static [&'static str],
}

/// The alias table. Every key (after [`normalize_key`]) must designate one
/// country only; `tests::no_alias_maps_to_two_countries` enforces it.
const COUNTRIES: &[Country] = &[
    Country {
        name: "Argentina",
        alpha2: "AR",
        alpha3: "ARG",
        aliases: &["Argentine", "República Argentina", "Republica Argentina"],
    },
    Country {
        name: "Australia",
        alpha2: "AU",
        alpha3: "AUS",
        aliases: &["Australie", "Australien", "Commonwealth of Australia"],
    },
    Country {
        name: "Austria",
        alpha2: "AT",
        alpha3: "AUT",
        aliases: &[
            "Autriche",
            "Österreich",
            "Osterreich",
            "Oesterreich",
            "Republik Österreich",
            "Republik Osterreich",
            "Republik Oesterreich",
        ],
    },
    Country {
        name: "Belgium",
        alpha2: "BE",
        alpha3: "BEL",
        aliases: &[
            "Belgique", "België", "Belgie", "Belgien", "Bélgica", "Belgica", "Belgio",
        ],
    },
    Country {
        name: "Brazil",
        alpha2: "BR",
        alpha3: "BRA",
        aliases: &[
            "Brésil",
            "Bresil",
            "Brasil",
            "Brasilien",
            "Brasile",
            "República Federativa do Brasil",
            "Republica Federativa do Brasil",
        ],
    },
    Country {
        name: "Canada",
        alpha2: "CA",
        alpha3: "CAN",
        aliases: &["Canadá", "Kanada"],
    },
    Country {
        name: "Chile",
        alpha2: "CL",
        alpha3: "CHL",
        aliases: &["Chili", "República de Chile", "Republica de Chile"],
    },
    Country {
        name: "China",
        alpha2: "CN",
        alpha3: "CHN",
        aliases: &[
            "Chine",
            "中国",
            "中國",
            "中华人民共和国",
            "Zhongguo",
            "People's Republic of China",
            "PRC",
            "P.R.C.",
            "PR China",
            "République populaire de Chine",
            "Republique populaire de Chine",
        ],
    },
    Country {
        name: "Colombia",
        alpha2: "CO",
        alpha3: "COL",
        aliases: &["Colombie", "Kolumbien"],
    },
    Country {
        name: "Côte d'Ivoire",
        alpha2: "CI",
        alpha3: "CIV",
        aliases: &[
            "Cote d'Ivoire",
            "Côte d’Ivoire",
            "Cote d’Ivoire",
            "Côte-d'Ivoire",
            "Cote-d'Ivoire",
            "Côte-d’Ivoire",
            "Cote-d’Ivoire",
            "Cote dIvoire",
            "Ivory Coast",
            "République de Côte d'Ivoire",
            "Republique de Cote d'Ivoire",
        ],
    },
    Country {
        name: "Cameroon",
        alpha2: "CM",
        alpha3: "CMR",
        aliases: &["Cameroun", "Kamerun", "Camerún", "Camerun"],
    },
    Country {
        name: "Czech Republic",
        alpha2: "CZ",
        alpha3: "CZE",
        aliases: &[
            "Czechia",
            "République tchèque",
            "Republique tcheque",
            "Tchéquie",
            "Tchequie",
            "Česko",
            "Cesko",
            "Česká republika",
            "Ceska republika",
            "Tschechien",
        ],
    },
    Country {
        name: "Denmark",
        alpha2: "DK",
        alpha3: "DNK",
        aliases: &["Danemark", "Danmark", "Dänemark", "Daenemark", "Dinamarca"],
    },
    Country {
        name: "Algeria",
        alpha2: "DZ",
        alpha3: "DZA",
        aliases: &[
            "Algérie",
            "Algerie",
            "Algerien",
            "Argelia",
            "الجزائر",
            "Al Jazair",
            "Dzayer",
        ],
    },
    Country {
        name: "Egypt",
        alpha2: "EG",
        alpha3: "EGY",
        aliases: &[
            "Égypte", "Egypte", "Ägypten", "Aegypten", "Egipto", "مصر", "Misr",
        ],
    },
    Country {
        name: "Finland",
        alpha2: "FI",
        alpha3: "FIN",
        aliases: &["Finlande", "Suomi", "Finnland", "Finlandia"],
    },
    Country {
        name: "France",
        alpha2: "FR",
        alpha3: "FRA",
        aliases: &[
            "Frankreich",
            "Francia",
            "França",
            "Franca",
            "République française",
            "Republique francaise",
        ],
    },
    Country {
        name: "Germany",
        alpha2: "DE",
        alpha3: "DEU",
        aliases: &[
            "Allemagne",
            "Deutschland",
            "Alemania",
            "Alemanha",
            "Germania",
            "Federal Republic of Germany",
            "Bundesrepublik Deutschland",
            "BRD",
        ],
    },
    Country {
        name: "Greece",
        alpha2: "GR",
        alpha3: "GRC",
        aliases: &[
            "Grèce",
            "Grece",
            "Griechenland",
            "Grecia",
            "Ελλάδα",
            "Ελλάς",
            "Ellada",
            "Ellas",
            "Hellas",
            "Hellenic Republic",
        ],
    },
    Country {
        name: "Hungary",
        alpha2: "HU",
        alpha3: "HUN",
        aliases: &[
            "Hongrie",
            "Magyarország",
            "Magyarorszag",
            "Ungarn",
            "Hungría",
            "Hungria",
        ],
    },
    Country {
        name: "India",
        alpha2: "IN",
        alpha3: "IND",
        aliases: &["Inde", "Indien", "Bharat", "भारत", "Republic of India"],
    },
    Country {
        name: "Ireland",
        alpha2: "IE",
        alpha3: "IRL",
        aliases: &[
            "Irlande",
            "Éire",
            "Eire",
            "Irland",
            "Irlanda",
            "Republic of Ireland",
            "République d'Irlande",
            "Republique d'Irlande",
        ],
    },
    Country {
        name: "Israel",
        alpha2: "IL",
        alpha3: "ISR",
        aliases: &["Israël", "ישראל", "إسرائيل", "Yisrael", "State of Israel"],
    },
    Country {
        name: "Italy",
        alpha2: "IT",
        alpha3: "ITA",
        aliases: &["Italie", "Italia", "Italien", "Repubblica Italiana"],
    },
    Country {
        name: "Japan",
        alpha2: "JP",
        alpha3: "JPN",
        aliases: &[
            "Japon", "Japón", "Japão", "Japao", "Giappone", "日本", "Nippon", "Nihon",
        ],
    },
    Country {
        name: "Luxembourg",
        alpha2: "LU",
        alpha3: "LUX",
        aliases: &[
            "Luxemburg",
            "Lëtzebuerg",
            "Letzebuerg",
            "Luxemburgo",
            "Lussemburgo",
            "Grand Duchy of Luxembourg",
            "Grand-Duché de Luxembourg",
            "Grand-Duche de Luxembourg",
        ],
    },
    Country {
        name: "Mexico",
        alpha2: "MX",
        alpha3: "MEX",
        aliases: &[
            "Mexique",
            "México",
            "Méjico",
            "Mejico",
            "Mexiko",
            "Messico",
            "Estados Unidos Mexicanos",
            "United Mexican States",
        ],
    },
    Country {
        name: "Morocco",
        alpha2: "MA",
        alpha3: "MAR",
        aliases: &[
            "Maroc",
            "Marokko",
            "Marruecos",
            "Marocco",
            "المغرب",
            "Al Maghrib",
            "Al-Maghrib",
            "ⵍⵎⵖⵔⵉⴱ",
            "Kingdom of Morocco",
            "Royaume du Maroc",
        ],
    },
    Country {
        name: "Netherlands",
        alpha2: "NL",
        alpha3: "NLD",
        aliases: &[
            "The Netherlands",
            "Pays-Bas",
            "Pays Bas",
            "Nederland",
            "Holland",
            "Hollande",
            "Holanda",
            "Niederlande",
            "Países Bajos",
            "Paises Bajos",
            "Paesi Bassi",
            "Kingdom of the Netherlands",
        ],
    },
    Country {
        name: "New Zealand",
        alpha2: "NZ",
        alpha3: "NZL",
        aliases: &[
            "Nouvelle-Zélande",
            "Nouvelle Zélande",
            "Nouvelle-Zelande",
            "Nouvelle Zelande",
            "Aotearoa",
            "Neuseeland",
            "Nueva Zelanda",
        ],
    },
    Country {
        name: "Norway",
        alpha2: "NO",
        alpha3: "NOR",
        aliases: &[
            "Norvège", "Norvege", "Norge", "Noreg", "Norwegen", "Noruega", "Norvegia",
        ],
    },
    Country {
        name: "Peru",
        alpha2: "PE",
        alpha3: "PER",
        aliases: &["Pérou", "Perou", "Perú", "Piruw"],
    },
    Country {
        name: "Poland",
        alpha2: "PL",
        alpha3: "POL",
        aliases: &["Pologne", "Polska", "Polen", "Polonia", "Polónia"],
    },
    Country {
        name: "Portugal",
        alpha2: "PT",
        alpha3: "PRT",
        aliases: &["Portogallo", "República Portuguesa", "Republica Portuguesa"],
    },
    Country {
        name: "Russia",
        alpha2: "RU",
        alpha3: "RUS",
        aliases: &[
            "Russie",
            "Russland",
            "Rusia",
            "Rússia",
            "Россия",
            "Rossiya",
            "Rossija",
            "Russian Federation",
            "Fédération de Russie",
            "Federation de Russie",
            "Российская Федерация",
        ],
    },
    Country {
        name: "Saudi Arabia",
        alpha2: "SA",
        alpha3: "SAU",
        aliases: &[
            "Arabie saoudite",
            "Saudi-Arabien",
            "Arabia Saudita",
            "Arabia Saudí",
            "Arabia Saudi",
            "KSA",
            "Kingdom of Saudi Arabia",
            "السعودية",
            "المملكة العربية السعودية",
        ],
    },
    Country {
        name: "Senegal",
        alpha2: "SN",
        alpha3: "SEN",
        aliases: &[
            "Sénégal",
            "Senegal",
            "République du Sénégal",
            "Republique du Senegal",
        ],
    },
    Country {
        name: "Singapore",
        alpha2: "SG",
        alpha3: "SGP",
        aliases: &["Singapour", "Singapura", "Singapur", "新加坡", "சிங்கப்பூர்"],
    },
    Country {
        name: "South Africa",
        alpha2: "ZA",
        alpha3: "ZAF",
        aliases: &[
            "Afrique du Sud",
            "Suid-Afrika",
            "Suid Afrika",
            "Südafrika",
            "Suedafrika",
            "Sudáfrica",
            "Sudafrica",
            "RSA",
            "Republic of South Africa",
        ],
    },
    Country {
        name: "South Korea",
        alpha2: "KR",
        alpha3: "KOR",
        aliases: &[
            "Korea",
            "Republic of Korea",
            "Korea, Republic of",
            "Korea (South)",
            "ROK",
            "Corée du Sud",
            "Coree du Sud",
            "Corée",
            "Coree",
            "Südkorea",
            "Suedkorea",
            "Corea del Sur",
            "대한민국",
            "한국",
            "Hanguk",
            "Daehan Minguk",
        ],
    },
    Country {
        name: "Spain",
        alpha2: "ES",
        alpha3: "ESP",
        aliases: &[
            "Espagne",
            "España",
            "Espana",
            "Espanha",
            "Spanien",
            "Spagna",
            "Reino de España",
            "Reino de Espana",
        ],
    },
    Country {
        name: "Sweden",
        alpha2: "SE",
        alpha3: "SWE",
        aliases: &[
            "Suède", "Suede", "Sverige", "Schweden", "Suecia", "Suécia", "Svezia",
        ],
    },
    Country {
        name: "Switzerland",
        alpha2: "CH",
        alpha3: "CHE",
        aliases: &[
            "Schweiz",
            "Suisse",
            "Svizzera",
            "Svizra",
            "Suiza",
            "Suíça",
            "Suica",
            "Helvetia",
            "Confoederatio Helvetica",
            "Swiss Confederation",
            "Confédération suisse",
            "Confederation suisse",
            "Schweizerische Eidgenossenschaft",
        ],
    },
    Country {
        name: "Tunisia",
        alpha2: "TN",
        alpha3: "TUN",
        aliases: &["Tunisie", "Tunesien", "Túnez", "Tunez", "تونس", "Tounes"],
    },
    Country {
        name: "Turkey",
        alpha2: "TR",
        alpha3: "TUR",
        aliases: &[
            "Türkiye",
            "Turkiye",
            "Turquie",
            "Türkei",
            "Tuerkei",
            "Turkei",
            "Turquía",
            "Turquia",
            "Republic of Türkiye",
            "Republic of Turkiye",
        ],
    },
    Country {
        name: "United Arab Emirates",
        alpha2: "AE",
        alpha3: "ARE",
        aliases: &[
            "UAE",
            "U.A.E.",
            "Emirates",
            "Émirats arabes unis",
            "Emirats arabes unis",
            "Vereinigte Arabische Emirate",
            "Emiratos Árabes Unidos",
            "Emiratos Arabes Unidos",
            "الإمارات العربية المتحدة",
            "الإمارات",
        ],
    },
    Country {
        name: "United Kingdom",
        alpha2: "GB",
        alpha3: "GBR",
        aliases: &[
            "UK",
            "U.K.",
            "Great Britain",
            "Britain",
            "United Kingdom of Great Britain and Northern Ireland",
            "Royaume-Uni",
            "Royaume Uni",
            "Grande-Bretagne",
            "Grande Bretagne",
            "Angleterre",
            "England",
            "Scotland",
            "Écosse",
            "Ecosse",
            "Wales",
            "Cymru",
            "Pays de Galles",
            "Northern Ireland",
            "Irlande du Nord",
            "Vereinigtes Königreich",
            "Vereinigtes Konigreich",
            "Großbritannien",
            "Grossbritannien",
            "Reino Unido",
            "Regno Unito",
        ],
    },
    Country {
        name: "United States",
        alpha2: "US",
        alpha3: "USA",
        aliases: &[
            "U.S.",
            "U.S.A.",
            "United States of America",
            "The United States",
            "Etats-Unis",
            "États-Unis",
            "Etats Unis",
            "États Unis",
            "Etats-Unis d'Amérique",
            "États-Unis d'Amérique",
            "Etats-Unis d'Amerique",
            "Vereinigte Staaten",
            "Vereinigte Staaten von Amerika",
            "Estados Unidos",
            "Estados Unidos de América",
            "Estados Unidos de America",
            "Stati Uniti",
        ],
    },
    Country {
        name: "Venezuela",
        alpha2: "VE",
        alpha3: "VEN",
        aliases: &[
            "Vénézuéla",
            "Venezuéla",
            "República Bolivariana de Venezuela",
            "Republica Bolivariana de Venezuela",
        ],
    },
];

/// Normalized alias -> index in [`COUNTRIES`], built once on first use.
///
/// Canonical names and ISO codes are inserted first, and an existing key is
/// never overwritten, so a country's own name and codes always win; the
/// no-ambiguity test guarantees there is nothing to overwrite anyway.
static ALIASES: LazyLock<HashMap<String, usize>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    let mut key = String::new();
    for (index, country) in COUNTRIES.iter().enumerate() {
        for spelling in spellings(country) {
            normalize_key(spelling, &mut key);
            if !key.is_empty() {
                map.entry(key.clone()).or_insert(index);
            }
        }
    }
    map
});

/// Every spelling of a country that the alias table matches: canonical name,
/// ISO codes, then the listed aliases.
fn spellings(country: &Country) -> impl Iterator<Item = &'static str> {
    [country.name, country.alpha2, country.alpha3]
        .into_iter()
        .chain(country.aliases.iter().copied())
}

/// Writes the lookup key of `raw` into `key` (cleared first).
///
/// The key is the Unicode lowercase of the text with dots removed,
/// whitespace runs collapsed to one space, leading and trailing whitespace
/// dropped, and whitespace next to a dot dropped too, so `U.S.A.`,
/// `u. s. a.` and `USA` share the key `usa`. Two foldings make the lowercase
/// stable: Greek final sigma becomes `σ` and Turkish dotted capital `İ`
/// becomes `i` (`char::to_lowercase` would give `i` plus a combining dot).
/// The alias table goes through the same function, so the folding only has
/// to be consistent, not linguistically perfect.
fn normalize_key(raw: &str, key: &mut String) {
    key.clear();
    let mut pending_space = false;
    let mut after_dot = false;
    for ch in raw.chars() {
        if ch == '.' {
            pending_space = false;
            after_dot = true;
        } else if ch.is_whitespace() {
            if !after_dot && !key.is_empty() {
                pending_space = true;
            }
        } else {
            if pending_space {
                key.push(' ');
            }
            pending_space = false;
            after_dot = false;
            match ch {
                'İ' => key.push('i'),
                'ς' => key.push('σ'),
                _ => key.extend(ch.to_lowercase().map(|c| if c == 'ς' { 'σ' } else { c })),
            }
        }
    }
}

/// Trims `raw` and collapses its inner whitespace runs to one space, keeping
/// everything else (case, dots, accents) as written.
fn collapse_whitespace(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for word in raw.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Outcome of the lookup, before any allocation for known countries.
enum Resolved {
    /// In the alias table.
    Known(&'static Country),
    /// Non-blank text not in the table, trimmed and collapsed.
    Other(String),
    /// Null or blank.
    Missing,
}

impl Resolved {
    fn name(&self) -> &str {
        match self {
            Resolved::Known(country) => country.name,
            Resolved::Other(text) => text,
            Resolved::Missing => UNKNOWN_COUNTRY,
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            Resolved::Known(country) => Some(country.alpha2),
            Resolved::Other(_) | Resolved::Missing => None,
        }
    }
}

/// Resolves one raw value; `key` is a scratch buffer so column-wide callers
/// reuse one allocation.
fn resolve(raw: Option<&str>, key: &mut String) -> Resolved {
    let Some(raw) = raw else {
        return Resolved::Missing;
    };
    if raw.split_whitespace().next().is_none() {
        return Resolved::Missing;
    }
    normalize_key(raw, key);
    match ALIASES
        .get(key.as_str())
        .and_then(|&index| COUNTRIES.get(index))
    {
        Some(country) => Resolved::Known(country),
        None => Resolved::Other(collapse_whitespace(raw)),
    }
}

/// The one implementation of country standardization (used by silver and by the stream).
///
/// Both paths call this (directly or through the Polars expressions below) so
/// a country is spelled the same whether it arrived by batch or by event.
pub fn standardize(raw: Option<&str>) -> StandardCountry {
    let resolved = resolve(raw, &mut String::new());
    StandardCountry {
        name: resolved.name().to_owned(),
        code: resolved.code(),
    }
}

/// Output type of both expressions: the input field's name with dtype String.
fn string_field(_schema: &Schema, field: &Field) -> PolarsResult<Field> {
    Ok(Field::new(field.name().clone(), DataType::String))
}

/// Casts the input to String so all-null (dtype Null) or non-string columns
/// are handled (or rejected with an error) instead of panicking.
fn as_string_column(column: &Column) -> PolarsResult<Column> {
    column.cast(&DataType::String)
}

/// Polars expression applying [`standardize`] element-wise and returning the
/// standardized name (String; null and blank become [`UNKNOWN_COUNTRY`]).
///
/// It is a plain element-wise `map`, so it can be used in any lazy plan, e.g.
/// `with_columns([standardized_country_name(col("country")).alias("country")])`.
pub fn standardized_country_name(expr: Expr) -> Expr {
    expr.map(
        |column: Column| {
            let column = as_string_column(&column)?;
            let values = column.str()?;
            let mut key = String::new();
            let names = StringChunked::from_iter_values(
                values.name().clone(),
                values.iter().map(|raw| match resolve(raw, &mut key) {
                    Resolved::Known(country) => std::borrow::Cow::Borrowed(country.name),
                    Resolved::Other(text) => std::borrow::Cow::Owned(text),
                    Resolved::Missing => std::borrow::Cow::Borrowed(UNKNOWN_COUNTRY),
                }),
            );
            Ok(names.into_column())
        },
        string_field,
    )
}

/// Polars expression applying [`standardize`] element-wise and returning the
/// ISO 3166-1 alpha-2 code (String; null when blank or not in the alias table).
///
/// Same element-wise `map` as [`standardized_country_name`], so both can sit
/// in one `with_columns` reading the same raw column.
pub fn country_code(expr: Expr) -> Expr {
    expr.map(
        |column: Column| {
            let column = as_string_column(&column)?;
            let values = column.str()?;
            let mut key = String::new();
            let codes = StringChunked::from_iter_options(
                values.name().clone(),
                values.iter().map(|raw| resolve(raw, &mut key).code()),
            );
            Ok(codes.into_column())
        },
        string_field,
    )
}

/// Every spelling the alias table knows, as (spelling, canonical name,
/// alpha-2 code): the data of the table, for tools that need to reproduce
/// the matching elsewhere (the SQL oracle of the tests).
pub fn alias_table() -> Vec<(&'static str, &'static str, &'static str)> {
    COUNTRIES
        .iter()
        .flat_map(|country| {
            spellings(country).map(move |spelling| (spelling, country.name, country.alpha2))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use polars::prelude::*;

    use super::*;

    /// Asserts that `raw` standardizes to `name` with code `code`.
    #[track_caller]
    fn check(raw: &str, name: &str, code: Option<&str>) {
        let got = standardize(Some(raw));
        assert_eq!(got.name, name, "name of {raw:?}");
        assert_eq!(got.code, code, "code of {raw:?}");
    }

    #[track_caller]
    fn check_all(raws: &[&str], name: &str, code: &str) {
        for raw in raws {
            check(raw, name, Some(code));
        }
    }

    #[test]
    fn united_states_aliases() {
        check_all(
            &[
                "USA",
                "US",
                "U.S.A.",
                "U.S.",
                "United States",
                "United States of America",
                "Etats-Unis",
                "États-Unis",
                "ÉTATS-UNIS",
            ],
            "United States",
            "US",
        );
    }

    #[test]
    fn united_kingdom_aliases() {
        check_all(
            &[
                "UK",
                "U.K.",
                "GB",
                "GBR",
                "Great Britain",
                "Royaume-Uni",
                "England",
            ],
            "United Kingdom",
            "GB",
        );
    }

    #[test]
    fn european_aliases() {
        check_all(&["Allemagne", "Deutschland", "DE"], "Germany", "DE");
        check_all(&["Espagne", "España", "Espana"], "Spain", "ES");
        check_all(
            &["Österreich", "Osterreich", "Oesterreich", "Autriche"],
            "Austria",
            "AT",
        );
        check_all(&["Schweiz", "Suisse", "Svizzera"], "Switzerland", "CH");
        check_all(&["Belgique", "België"], "Belgium", "BE");
        check_all(&["Italie", "Italia"], "Italy", "IT");
        check_all(&["Suède", "Sverige"], "Sweden", "SE");
        check_all(&["Norvège", "Norge"], "Norway", "NO");
        check_all(&["Danemark", "Danmark"], "Denmark", "DK");
        check_all(&["Finlande", "Suomi"], "Finland", "FI");
        check_all(&["Irlande", "Éire"], "Ireland", "IE");
        check_all(&["Pologne", "Polska"], "Poland", "PL");
        check_all(&["Pays-Bas", "Nederland", "Holland"], "Netherlands", "NL");
        check_all(&["France", "FR"], "France", "FR");
        check_all(&["Portugal", "PT"], "Portugal", "PT");
    }

    #[test]
    fn american_aliases() {
        check_all(&["Brésil", "Brasil", "Bresil"], "Brazil", "BR");
        check_all(&["Mexique", "México"], "Mexico", "MX");
        check_all(&["Venezuela", "VE"], "Venezuela", "VE");
        check_all(&["Argentine", "Argentina"], "Argentina", "AR");
        check_all(&["Canada", "CA"], "Canada", "CA");
    }

    #[test]
    fn other_countries() {
        check_all(&["Czechia", "République tchèque"], "Czech Republic", "CZ");
        check_all(&["Türkiye", "TÜRKİYE", "Turquie"], "Turkey", "TR");
        check_all(&["Ελλάδα", "ΕΛΛΆΣ"], "Greece", "GR");
        check_all(&["Ivory Coast", "Cote d'Ivoire"], "Côte d'Ivoire", "CI");
        check_all(&["UAE", "U.A.E."], "United Arab Emirates", "AE");
        check_all(&["Corée du Sud", "Korea"], "South Korea", "KR");
        check_all(&["Maroc", "المغرب"], "Morocco", "MA");
        check_all(&["日本", "Japon"], "Japan", "JP");
    }

    #[test]
    fn trims_collapses_and_ignores_case_and_dots() {
        check("  United   Kingdom ", "United Kingdom", Some("GB"));
        check("USA ", "United States", Some("US"));
        check("u.s.a.", "United States", Some("US"));
        check("U. S. A.", "United States", Some("US"));
        check("DEUTSCHLAND", "Germany", Some("DE"));
        check("\tunited\u{a0}states\n", "United States", Some("US"));
    }

    #[test]
    fn unknown_names_keep_their_cleaned_text() {
        check("  Atlantis   Nova ", "Atlantis Nova", None);
        check("Narnia", "Narnia", None);
        check("St. Elsewhere", "St. Elsewhere", None);
        check("...", "...", None);
    }

    #[test]
    fn null_and_blank_are_unknown() {
        let unknown = StandardCountry {
            name: UNKNOWN_COUNTRY.to_owned(),
            code: None,
        };
        assert_eq!(standardize(None), unknown);
        assert_eq!(standardize(Some("")), unknown);
        assert_eq!(standardize(Some("   ")), unknown);
        assert_eq!(standardize(Some("\t\n\u{3000}")), unknown);
    }

    #[test]
    fn no_alias_maps_to_two_countries() {
        let mut seen: HashMap<String, (usize, &str)> = HashMap::new();
        let mut conflicts = Vec::new();
        let mut key = String::new();
        for (index, country) in COUNTRIES.iter().enumerate() {
            for spelling in spellings(country) {
                normalize_key(spelling, &mut key);
                assert!(!key.is_empty(), "{spelling:?} has an empty key");
                match seen.get(&key) {
                    Some(&(other, other_spelling)) if other != index => conflicts.push(format!(
                        "{key:?}: {spelling:?} ({}) vs {other_spelling:?} ({})",
                        country.name, COUNTRIES[other].name
                    )),
                    Some(_) => {}
                    None => {
                        seen.insert(key.clone(), (index, spelling));
                    }
                }
            }
        }
        assert!(conflicts.is_empty(), "ambiguous aliases: {conflicts:#?}");
        assert_eq!(seen.len(), ALIASES.len());
    }

    #[test]
    fn every_alias_name_and_code_maps_to_its_own_country() {
        let mut names = HashSet::new();
        let mut codes = HashSet::new();
        for country in COUNTRIES {
            assert!(names.insert(country.name), "duplicate {}", country.name);
            assert!(codes.insert(country.alpha2), "duplicate {}", country.alpha2);
            assert!(codes.insert(country.alpha3), "duplicate {}", country.alpha3);
            assert!(
                country.alpha2.len() == 2 && country.alpha2.bytes().all(|b| b.is_ascii_uppercase()),
                "bad alpha-2 {}",
                country.alpha2
            );
            assert!(
                country.alpha3.len() == 3 && country.alpha3.bytes().all(|b| b.is_ascii_uppercase()),
                "bad alpha-3 {}",
                country.alpha3
            );
            for spelling in spellings(country) {
                for variant in [
                    spelling.to_owned(),
                    spelling.to_lowercase(),
                    spelling.to_uppercase(),
                    format!("  {spelling} "),
                ] {
                    check(&variant, country.name, Some(country.alpha2));
                }
            }
        }
        let northwind = [
            "Argentina",
            "Austria",
            "Belgium",
            "Brazil",
            "Canada",
            "Denmark",
            "Finland",
            "France",
            "Germany",
            "Ireland",
            "Italy",
            "Mexico",
            "Norway",
            "Poland",
            "Portugal",
            "Spain",
            "Sweden",
            "Switzerland",
            "UK",
            "USA",
            "Venezuela",
        ];
        for raw in northwind {
            assert!(standardize(Some(raw)).code.is_some(), "{raw} not in table");
        }
    }

    /// Runs the two expressions exactly as silver does, keeping the raw value.
    fn standardize_frame(df: DataFrame) -> PolarsResult<DataFrame> {
        df.lazy()
            .with_columns([
                col("country").alias("raw"),
                standardized_country_name(col("country")).alias("country"),
                country_code(col("country")).alias("country_code"),
            ])
            .select([col("raw"), col("country"), col("country_code")])
            .collect()
    }

    #[test]
    fn expressions_match_standardize() -> PolarsResult<()> {
        let raws = [
            Some("USA"),
            None,
            Some(""),
            Some(" u.k. "),
            Some("Atlantis"),
            Some("Brésil"),
        ];
        let out = standardize_frame(df!("country" => raws)?)?;
        let names = out.column("country")?.str()?;
        let codes = out.column("country_code")?.str()?;
        assert_eq!(names.null_count(), 0);
        for (i, raw) in raws.iter().enumerate() {
            let expected = standardize(*raw);
            assert_eq!(names.get(i), Some(expected.name.as_str()), "row {i}");
            assert_eq!(codes.get(i), expected.code, "row {i}");
        }
        Ok(())
    }

    #[test]
    fn expressions_handle_all_null_and_non_string_columns() -> PolarsResult<()> {
        let nulls = Column::full_null("country".into(), 3, &DataType::Null);
        let out = standardize_frame(DataFrame::new(3, vec![nulls])?)?;
        let names: Vec<_> = out.column("country")?.str()?.iter().collect();
        assert_eq!(names, vec![Some(UNKNOWN_COUNTRY); 3]);
        assert_eq!(out.column("country_code")?.null_count(), 3);

        let numbers = df!("country" => [Some(1i32), None])?;
        let out = standardize_frame(numbers)?;
        let names: Vec<_> = out.column("country")?.str()?.iter().collect();
        assert_eq!(names, vec![Some("1"), Some(UNKNOWN_COUNTRY)]);

        let schema = df!("country" => ["x"])?
            .lazy()
            .with_columns([
                standardized_country_name(col("country")).alias("country"),
                country_code(col("country")).alias("country_code"),
            ])
            .collect_schema()?;
        assert_eq!(schema.get("country"), Some(&DataType::String));
        assert_eq!(schema.get("country_code"), Some(&DataType::String));
        Ok(())
    }

    #[test]
    fn snapshot_of_a_standardized_frame() -> PolarsResult<()> {
        let df = df!("country" => [
            Some("USA"),
            Some("u.s.a."),
            Some("  United   Kingdom "),
            Some("Royaume-Uni"),
            Some("DEUTSCHLAND"),
            Some("Österreich"),
            Some("Oesterreich"),
            Some("België"),
            Some("ch"),
            Some("FRA"),
            Some("Brasil"),
            Some("Cote d'Ivoire"),
            None,
            Some(""),
            Some("   "),
            Some("  Atlantis   Nova "),
        ])?;
        let mut out = standardize_frame(df)?;
        // Quote the raw values so leading, trailing and inner spaces (and ""
        // versus "   ") are visible in the snapshot.
        let quoted: StringChunked = out
            .column("raw")?
            .str()?
            .iter()
            .map(|raw| raw.map(|text| format!("{text:?}")))
            .collect();
        out.replace("raw", quoted.with_name("raw".into()).into_column())?;
        // Polars elides rows beyond its display limit (10 by default), so
        // the frame is shown in two halves to keep every row visible.
        let half = out.height().div_ceil(2);
        let shown = format!(
            "{}\n{}",
            out.slice(0, half),
            out.slice(i64::try_from(half).unwrap_or(i64::MAX), half)
        );
        insta::assert_snapshot!(shown);
        Ok(())
    }
}
