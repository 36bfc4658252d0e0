//! A deterministic generator of the Northwind database.
//!
//! The generated tables have the names, column order and types of the standard public
//! PostgreSQL Northwind dump (snake_case), as Polars frames typed exactly as reading those
//! PostgreSQL tables gives (`smallint` → `Int16`, `integer` → `Int32`, `real` → `Float32`,
//! `varchar`/`text` → `String`, `date` → `Date`, `bytea` → `Binary`). Two uses:
//!
//! 1. the embedded source of the lake when no PostgreSQL is configured ([`generate`]);
//! 2. seeding a PostgreSQL database: the DDL ([`ddl`]) and the COPY text of the rows
//!    ([`write_copy_text`]), which `cargo xtask seed` (`lake-tasks`) loads.
//!
//! # Content
//!
//! | table           | rows                       | origin |
//! |-----------------|----------------------------|--------|
//! | `categories`    | 8                          | the dump (pictures: 5 placeholder bytes) |
//! | `customers`     | 91 × scale                 | generated |
//! | `employees`     | 9                          | the dump (photos: 5 placeholder bytes) |
//! | `orders`        | 830 × scale                | generated, ids from 10248 |
//! | `order_details` | ≈ 2.6 per order            | generated, 1–6 distinct products per order |
//! | `products`      | 77                         | the dump, with three category changes (below) |
//!
//! Customers: countries drawn with the dump's 21 country frequencies, cities (and
//! state/province `region`, null where the dump has none, ≈ 2/3 of rows) with the dump's
//! frequencies per country; ids are 5 uppercase letters derived from the company name
//! (`ALFKI` style), unique. Orders: dated 1996-07-04 to 1998-05-06 with volume growing over
//! time (ids increase with the date), `required_date` = `order_date` + 28 days,
//! `shipped_date` = `order_date` + 1..=30 days, or null for 2.5 % of orders (picked among the
//! last tenth, like the dump's pending orders); every customer except 2 in 91 has at least
//! 2 orders and the rest follow a log-normal activity. Lines: quantities 1..=120 skewed
//! small (55 % "round" values such as 10, 20, 30, else log-normal with median 18),
//! discount 0 for 61 % of lines else one of 0.05, 0.1, 0.15, 0.2, 0.25; `unit_price` is the
//! product's price.
//!
//! # Messy rows
//!
//! Every kind below is injected at an exact count of `max(minimum, round(rate × rows))`
//! rows, at distinct positions (a row carries at most one defect of its table), so that
//! every kind exists at scale 1. The rates are in [`rates`].
//!
//! | table           | defect                                                   | rate of rows | min |
//! |-----------------|----------------------------------------------------------|--------------|-----|
//! | `order_details` | `product_id` that does not exist (999, 9999 alternately) | 0.3 %        | 1 |
//! | `order_details` | `quantity` 0                                              | 0.3 %        | 1 |
//! | `order_details` | null `discount`                                           | 0.5 %        | 1 |
//! | `order_details` | exact duplicate line (extra copy right after the line)    | 0.2 %        | 1 |
//! | `order_details` | extra copy of a line under an `order_id` that does not exist (10247, 10246, … downwards) | 0.1 % | 1 |
//! | `order_details` | negative `unit_price` (minus the product's price)         | 0.05 %       | 1 |
//! | `order_details` | `discount` 1.5                                            | 0.05 %       | 1 |
//! | `orders`        | null `order_date`                                         | 0.2 %        | 1 |
//! | `orders`        | bad `customer_id`: cycles through a 5-letter id that does not exist, `'  '` and `''` | 0.2 % | 3 |
//! | `customers`     | country alias, cycling through `USA `, `Deutschland`, `Royaume-Uni`, `U.K.`, `Allemagne`, `Brasil`, `Etats-Unis`, `  France`, `germany` (each on a customer of the matching country) | 10 % | 1 |
//! | `customers`     | null `country`                                            | 1 %          | 1 |
//! | `customers`     | empty `country` (`''`)                                    | 1 %          | 1 |
//! | `products`      | null `category_id`: products 13 (Konbu) and 52 (Filo Mix) | fixed        | – |
//! | `products`      | `category_id` 99, which does not exist: product 75 (Rhönbräu Klosterbier) | fixed | – |
//!
//! At scale 1 with [`DEFAULT_SEED`] (2188 lines before the extra copies) that makes 7, 7,
//! 11, 4, 2, 1 and 1 defective lines, 2 and 3 defective orders, and 9, 1 and 1 defective
//! customers.
//!
//! The order_details rates apply to the lines before the extra copies are added. Ship
//! columns of orders always come from a real customer (with its clean country), also when
//! the order's `customer_id` is bad. The dump's own quirks are kept (e.g. employee addresses
//! holding a literal backslash-n).
//!
//! # Id type
//!
//! All `*_id` columns, `ship_via` and `reports_to` are `Int16` (`smallint`, as in the dump)
//! when every generated id fits in `smallint` — true up to scale 27 — and `Int32`
//! (`integer`) otherwise. Other integer columns keep the dump's types.
//!
//! # Determinism
//!
//! The output depends only on `(scale, seed)`: the only randomness is [`SplitMix64`] (one
//! independent stream per table), hash sets are only probed, never iterated, and nothing
//! reads the clock or the environment.

mod calendar;
mod copy;
mod reference;
mod rng;
mod world;

use calendar::days_from_civil;

#[cfg(test)]
mod tests;

use std::collections::HashSet;

use anyhow::{Context, Result, ensure};
use polars::prelude::*;

pub use copy::write_copy_text;
pub use rng::SplitMix64;

use reference::{CATEGORIES, EMPLOYEES, PRODUCTS};
use world::{
    COMPANY_FIRST, COMPANY_SECOND, CONTACT_TITLES, COUNTRIES, COUNTRY_ALIASES, FIRST_NAMES,
    LAST_NAMES, Style,
};

/// The six tables, in the order of [`Northwind::tables`].
pub const TABLES: [&str; 6] = [
    "categories",
    "customers",
    "employees",
    "orders",
    "order_details",
    "products",
];

/// The seed the lake uses unless told otherwise.
pub const DEFAULT_SEED: u64 = 20_260_101;

/// The largest accepted scale (75 M order lines; customer ids stay easy to keep unique).
pub const MAX_SCALE: u32 = 20_000;

/// The first order id (as in the dump).
pub const FIRST_ORDER_ID: i32 = 10_248;

/// Orders per unit of scale.
pub const ORDERS_PER_SCALE: usize = 830;

/// Customers per unit of scale.
pub const CUSTOMERS_PER_SCALE: usize = 91;

/// Shares of messy rows (see the crate documentation for what each one does).
pub mod rates {
    /// order_details: `product_id` 999 or 9999.
    pub const ORPHAN_PRODUCT: f64 = 0.003;
    /// order_details: `quantity` 0.
    pub const ZERO_QUANTITY: f64 = 0.003;
    /// order_details: null `discount`.
    pub const NULL_DISCOUNT: f64 = 0.005;
    /// order_details: exact duplicate line.
    pub const DUPLICATE_LINE: f64 = 0.002;
    /// order_details: extra line whose `order_id` does not exist.
    pub const ORPHAN_ORDER: f64 = 0.001;
    /// order_details: negative `unit_price`.
    pub const NEGATIVE_PRICE: f64 = 0.0005;
    /// order_details: `discount` 1.5.
    pub const DISCOUNT_OVER_ONE: f64 = 0.0005;
    /// orders: null `order_date`.
    pub const NULL_ORDER_DATE: f64 = 0.002;
    /// orders: `customer_id` that does not exist, `'  '` or `''` (at least 3 rows).
    pub const BAD_CUSTOMER_ID: f64 = 0.002;
    /// customers: country alias.
    pub const COUNTRY_ALIAS: f64 = 0.10;
    /// customers: null `country`.
    pub const NULL_COUNTRY: f64 = 0.01;
    /// customers: empty `country`.
    pub const EMPTY_COUNTRY: f64 = 0.01;
    /// orders with a null `shipped_date` (not a defect: pending orders, as in the dump).
    pub const UNSHIPPED: f64 = 0.025;
    /// customers without orders (not a defect: the dump has 2 of 91).
    pub const INACTIVE_CUSTOMER: f64 = 2.0 / 91.0;
}

/// Products whose `category_id` is nulled.
pub const PRODUCTS_WITHOUT_CATEGORY: [i32; 2] = [13, 52];
/// The product whose `category_id` becomes [`UNKNOWN_CATEGORY_ID`].
pub const PRODUCT_WITH_UNKNOWN_CATEGORY: i32 = 75;
/// A category id that does not exist.
pub const UNKNOWN_CATEGORY_ID: i32 = 99;
/// Product ids that do not exist, used by orphan lines (alternately).
pub const ORPHAN_PRODUCT_IDS: [i32; 2] = [999, 9999];

/// A generated Northwind database.
#[derive(Clone, Debug)]
pub struct Northwind {
    pub scale: u32,
    pub seed: u64,
    /// The six tables, named as in [`TABLES`] and in that order.
    pub tables: Vec<(&'static str, DataFrame)>,
}

impl Northwind {
    /// The frame of a table, by name.
    pub fn table(&self, name: &str) -> Option<&DataFrame> {
        self.tables
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, df)| df)
    }

    /// The type of the id columns: `Int16` unless the orders' `order_id` is `Int32`.
    pub fn id_dtype(&self) -> DataType {
        let wide = self
            .table("orders")
            .and_then(|df| df.column("order_id").ok())
            .is_some_and(|c| c.dtype() == &DataType::Int32);
        if wide {
            DataType::Int32
        } else {
            DataType::Int16
        }
    }
}

/// Generates the six tables for `scale` (1..=[`MAX_SCALE`]) and `seed`.
pub fn generate(scale: u32, seed: u64) -> Result<Northwind> {
    ensure!(
        (1..=MAX_SCALE).contains(&scale),
        "Northwind scale must be between 1 and {MAX_SCALE}, got {scale}"
    );
    let customers = gen_customers(scale as usize * CUSTOMERS_PER_SCALE, seed);
    let orders = gen_orders(scale as usize * ORDERS_PER_SCALE, seed, &customers);
    let lines = gen_lines(orders.n, seed);

    let last_order_id = FIRST_ORDER_ID + orders.n as i32 - 1;
    let max_id = [
        last_order_id,
        UNKNOWN_CATEGORY_ID,
        lines.order_id.iter().copied().max().unwrap_or(0),
        lines.product_id.iter().copied().max().unwrap_or(0),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let wide = max_id > i32::from(i16::MAX);

    let customers_df = customers.frame().context("building customers")?;
    let tables = vec![
        (
            "categories",
            categories_frame(wide).context("building categories")?,
        ),
        (
            "orders",
            orders
                .frame(&customers, &customers_df, wide)
                .context("building orders")?,
        ),
        ("customers", customers_df),
        (
            "employees",
            employees_frame(wide).context("building employees")?,
        ),
        (
            "order_details",
            lines.frame(wide).context("building order_details")?,
        ),
        (
            "products",
            products_frame(wide).context("building products")?,
        ),
    ];
    // Put them in the order of TABLES.
    let mut tables = tables;
    tables.sort_by_key(|(name, _)| TABLES.iter().position(|t| t == name));
    Ok(Northwind {
        scale,
        seed,
        tables,
    })
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Stream labels for [`SplitMix64::stream`].
const STREAM_CUSTOMERS: u64 = 1;
const STREAM_ORDERS: u64 = 2;
const STREAM_LINES: u64 = 3;

const FIRST_ORDER_DAY: i32 = days_from_civil(1996, 7, 4);
const LAST_ORDER_DAY: i32 = days_from_civil(1998, 5, 6);

/// `max(min, round(rate × rows))`, never more than `rows`.
fn defect_count(rows: usize, rate: f64, min: usize) -> usize {
    (((rows as f64) * rate).round() as usize).max(min).min(rows)
}

/// `k` distinct positions in `0..used.len()` not yet used, marked used, ascending.
fn pick_free(rng: &mut SplitMix64, used: &mut [bool], k: usize) -> Vec<usize> {
    let free = used.iter().filter(|u| !**u).count();
    let k = k.min(free);
    let mut out = Vec::with_capacity(k);
    while out.len() < k {
        let i = rng.index(used.len());
        if !used[i] {
            used[i] = true;
            out.push(i);
        }
    }
    out.sort_unstable();
    out
}

/// An unused position among `candidates`, marked used: up to 64 random tries, then the
/// first unused candidate; `None` if all are used.
fn pick_from(rng: &mut SplitMix64, candidates: &[usize], used: &mut [bool]) -> Option<usize> {
    if candidates.is_empty() {
        return None;
    }
    let found = (0..64)
        .map(|_| candidates[rng.index(candidates.len())])
        .find(|&i| !used[i])
        .or_else(|| candidates.iter().copied().find(|&i| !used[i]))?;
    used[found] = true;
    Some(found)
}

/// Fills a template: `#` → digit, `@` → uppercase letter, `%` → the city's area code,
/// `&` → the state's ZIP prefix (random digits when unknown).
fn fill(rng: &mut SplitMix64, template: &str, city: &str, region: Option<&str>) -> String {
    let mut s = String::with_capacity(template.len() + 4);
    for c in template.chars() {
        match c {
            '#' => s.push(char::from(rng.digit())),
            '@' => s.push(char::from(rng.upper())),
            '%' => match world::area_code(city) {
                Some(code) => s.push_str(code),
                None => (0..3).for_each(|_| s.push(char::from(rng.digit()))),
            },
            '&' => match region.and_then(world::zip_prefix) {
                Some(prefix) => s.push_str(prefix),
                None => (0..2).for_each(|_| s.push(char::from(rng.digit()))),
            },
            c => s.push(c),
        }
    }
    s
}

/// A fax number next to `phone`: its last four digits redrawn.
fn fax_of(rng: &mut SplitMix64, phone: &str) -> String {
    let mut bytes = phone.as_bytes().to_vec();
    let mut left = 4;
    for b in bytes.iter_mut().rev() {
        if left == 0 {
            break;
        }
        if b.is_ascii_digit() {
            *b = rng.digit();
            left -= 1;
        }
    }
    // Only ASCII digits were replaced by ASCII digits.
    String::from_utf8(bytes).unwrap_or_else(|_| phone.to_string())
}

fn id_column(name: &str, v: &[i32], wide: bool) -> Result<Column> {
    let s = if wide {
        Series::new(name.into(), v)
    } else {
        let narrow = v
            .iter()
            .map(|&x| i16::try_from(x))
            .collect::<Result<Vec<i16>, _>>()
            .with_context(|| format!("{name}: an id does not fit smallint"))?;
        Series::from_vec(name.into(), narrow)
    };
    Ok(s.into_column())
}

fn opt_id_column(name: &str, v: &[Option<i32>], wide: bool) -> Result<Column> {
    let s = if wide {
        Series::new(name.into(), v)
    } else {
        let narrow = v
            .iter()
            .map(|x| x.map(i16::try_from).transpose())
            .collect::<Result<Vec<Option<i16>>, _>>()
            .with_context(|| format!("{name}: an id does not fit smallint"))?;
        Series::new(name.into(), narrow)
    };
    Ok(s.into_column())
}

fn date_column(name: &str, days: Vec<i32>) -> Column {
    Int32Chunked::from_vec(name.into(), days)
        .into_date()
        .into_series()
        .into_column()
}

fn opt_date_column(name: &str, days: &[Option<i32>]) -> Column {
    Int32Chunked::from_slice_options(name.into(), days)
        .into_date()
        .into_series()
        .into_column()
}

fn named<T, P: ?Sized>(name: &str, v: T) -> Column
where
    Series: NamedFrom<T, P>,
{
    Series::new(name.into(), v).into_column()
}

// ---------------------------------------------------------------------------------------
// Reference tables
// ---------------------------------------------------------------------------------------

/// The placeholder picture of a category: a 5-byte "BM" stub.
fn category_picture(id: i32) -> Vec<u8> {
    vec![0x42, 0x4D, id as u8, 0x00, 0xFF]
}

/// The placeholder photo of an employee: a 5-byte "BM" stub.
fn employee_photo(id: i32) -> Vec<u8> {
    vec![0x42, 0x4D, 0x10 + id as u8, 0xFF, 0x00]
}

fn categories_frame(wide: bool) -> Result<DataFrame> {
    let ids: Vec<i32> = CATEGORIES.iter().map(|c| c.id).collect();
    let names: Vec<&str> = CATEGORIES.iter().map(|c| c.name).collect();
    let descriptions: Vec<&str> = CATEGORIES.iter().map(|c| c.description).collect();
    let pictures: Vec<Vec<u8>> = CATEGORIES.iter().map(|c| category_picture(c.id)).collect();
    let pictures: Vec<Option<&[u8]>> = pictures.iter().map(|p| Some(p.as_slice())).collect();
    Ok(DataFrame::new_infer_height(vec![
        id_column("category_id", &ids, wide)?,
        named("category_name", &names),
        named("description", &descriptions),
        named("picture", &pictures),
    ])?)
}

fn employees_frame(wide: bool) -> Result<DataFrame> {
    let e = &EMPLOYEES;
    let strs = |f: fn(&reference::Employee) -> &'static str| -> Vec<&'static str> {
        e.iter().map(f).collect()
    };
    let date = |(y, m, d): (i32, u32, u32)| days_from_civil(y, m, d);
    let photos: Vec<Vec<u8>> = e.iter().map(|x| employee_photo(x.id)).collect();
    let photos: Vec<Option<&[u8]>> = photos.iter().map(|p| Some(p.as_slice())).collect();
    let ids: Vec<i32> = e.iter().map(|x| x.id).collect();
    let reports_to: Vec<Option<i32>> = e.iter().map(|x| x.reports_to).collect();
    let regions: Vec<Option<&str>> = e.iter().map(|x| x.region).collect();
    Ok(DataFrame::new_infer_height(vec![
        id_column("employee_id", &ids, wide)?,
        named("last_name", strs(|x| x.last_name)),
        named("first_name", strs(|x| x.first_name)),
        named("title", strs(|x| x.title)),
        named("title_of_courtesy", strs(|x| x.title_of_courtesy)),
        date_column("birth_date", e.iter().map(|x| date(x.birth_date)).collect()),
        date_column("hire_date", e.iter().map(|x| date(x.hire_date)).collect()),
        named("address", strs(|x| x.address)),
        named("city", strs(|x| x.city)),
        named("region", &regions),
        named("postal_code", strs(|x| x.postal_code)),
        named("country", strs(|x| x.country)),
        named("home_phone", strs(|x| x.home_phone)),
        named("extension", strs(|x| x.extension)),
        named("photo", &photos),
        named("notes", strs(|x| x.notes)),
        opt_id_column("reports_to", &reports_to, wide)?,
        named("photo_path", strs(|x| x.photo_path)),
    ])?)
}

/// The category of a product after the documented changes.
fn product_category(p: &reference::Product) -> Option<i32> {
    if PRODUCTS_WITHOUT_CATEGORY.contains(&p.id) {
        None
    } else if p.id == PRODUCT_WITH_UNKNOWN_CATEGORY {
        Some(UNKNOWN_CATEGORY_ID)
    } else {
        Some(p.category_id)
    }
}

fn products_frame(wide: bool) -> Result<DataFrame> {
    let p = &PRODUCTS;
    let ids: Vec<i32> = p.iter().map(|x| x.id).collect();
    let suppliers: Vec<i32> = p.iter().map(|x| x.supplier_id).collect();
    let categories: Vec<Option<i32>> = p.iter().map(product_category).collect();
    let names: Vec<&str> = p.iter().map(|x| x.name).collect();
    let qpu: Vec<&str> = p.iter().map(|x| x.quantity_per_unit).collect();
    let price: Vec<f32> = p.iter().map(|x| x.unit_price).collect();
    let stock: Vec<i16> = p.iter().map(|x| x.units_in_stock).collect();
    let on_order: Vec<i16> = p.iter().map(|x| x.units_on_order).collect();
    let reorder: Vec<i16> = p.iter().map(|x| x.reorder_level).collect();
    let discontinued: Vec<i32> = p.iter().map(|x| x.discontinued).collect();
    Ok(DataFrame::new_infer_height(vec![
        id_column("product_id", &ids, wide)?,
        named("product_name", &names),
        id_column("supplier_id", &suppliers, wide)?,
        opt_id_column("category_id", &categories, wide)?,
        named("quantity_per_unit", &qpu),
        Series::from_vec("unit_price".into(), price).into_column(),
        Series::from_vec("units_in_stock".into(), stock).into_column(),
        Series::from_vec("units_on_order".into(), on_order).into_column(),
        Series::from_vec("reorder_level".into(), reorder).into_column(),
        Series::from_vec("discontinued".into(), discontinued).into_column(),
    ])?)
}

// ---------------------------------------------------------------------------------------
// Customers
// ---------------------------------------------------------------------------------------

struct Customers {
    id: Vec<String>,
    company_name: Vec<String>,
    contact_name: Vec<String>,
    contact_title: Vec<&'static str>,
    address: Vec<String>,
    city: Vec<&'static str>,
    region: Vec<Option<&'static str>>,
    postal_code: Vec<Option<String>>,
    /// With the injected aliases, nulls and empty strings.
    country: Vec<Option<&'static str>>,
    /// The country as drawn (used for the ship columns of orders).
    clean_country: Vec<&'static str>,
    phone: Vec<String>,
    fax: Vec<Option<String>>,
    /// Every customer id, for uniqueness checks (probed, never iterated).
    taken: HashSet<String>,
}

/// `ALFKI`-style id: 3 letters of the first word and 2 of the last word of the company
/// name (ASCII letters, uppercased), padded with random letters; on a clash the last two
/// letters are redrawn (16 tries), then all five.
fn customer_id(rng: &mut SplitMix64, company: &str, taken: &HashSet<String>) -> String {
    let words: Vec<Vec<u8>> = company
        .split_whitespace()
        .map(|w| {
            w.bytes()
                .filter(u8::is_ascii_alphabetic)
                .map(|b| b.to_ascii_uppercase())
                .collect::<Vec<u8>>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let mut id: Vec<u8> = Vec::with_capacity(5);
    if let Some(first) = words.first() {
        id.extend(first.iter().take(3));
        if words.len() > 1 {
            if let Some(last) = words.last() {
                id.extend(last.iter().take(2));
            }
        } else {
            id.extend(first.iter().skip(3).take(2));
        }
    }
    while id.len() < 5 {
        id.push(rng.upper());
    }
    let as_string = |id: &[u8]| id.iter().map(|&b| char::from(b)).collect::<String>();
    let mut candidate = as_string(&id);
    let mut tries = 0;
    while taken.contains(&candidate) {
        if tries < 16 {
            id[3] = rng.upper();
            id[4] = rng.upper();
        } else {
            for b in &mut id {
                *b = rng.upper();
            }
        }
        tries += 1;
        candidate = as_string(&id);
    }
    candidate
}

fn street_address(rng: &mut SplitMix64, style: Style) -> String {
    let (stems, affixes) = world::street_parts(style);
    let stem = rng.pick(stems);
    let affix = rng.pick(affixes);
    match style {
        Style::English => format!("{} {stem} {affix}", 1 + rng.below(2999)),
        Style::German | Style::Nordic => format!("{stem}{affix} {}", 1 + rng.below(120)),
        Style::French => format!("{}, {affix} {stem}", 1 + rng.below(200)),
        Style::Spanish | Style::Portuguese => format!("{affix} {stem}, {}", 1 + rng.below(999)),
        Style::Italian | Style::Polish => format!("{affix} {stem} {}", 1 + rng.below(150)),
    }
}

fn gen_customers(n: usize, seed: u64) -> Customers {
    let mut rng = SplitMix64::stream(seed, STREAM_CUSTOMERS);
    let country_w: Vec<u32> = COUNTRIES.iter().map(|c| c.weight).collect();
    let city_w: Vec<Vec<u32>> = COUNTRIES
        .iter()
        .map(|c| c.cities.iter().map(|&(_, _, w)| w).collect())
        .collect();
    let title_w: Vec<u32> = CONTACT_TITLES.iter().map(|&(_, w)| w).collect();

    let mut c = Customers {
        id: Vec::with_capacity(n),
        company_name: Vec::with_capacity(n),
        contact_name: Vec::with_capacity(n),
        contact_title: Vec::with_capacity(n),
        address: Vec::with_capacity(n),
        city: Vec::with_capacity(n),
        region: Vec::with_capacity(n),
        postal_code: Vec::with_capacity(n),
        country: Vec::with_capacity(n),
        clean_country: Vec::with_capacity(n),
        phone: Vec::with_capacity(n),
        fax: Vec::with_capacity(n),
        taken: HashSet::with_capacity(n),
    };
    for _ in 0..n {
        let ci = rng.weighted(&country_w);
        let country = &COUNTRIES[ci];
        let (city, region, _) = country.cities[rng.weighted(&city_w[ci])];
        let company = format!("{} {}", rng.pick(&COMPANY_FIRST), rng.pick(&COMPANY_SECOND));
        let id = customer_id(&mut rng, &company, &c.taken);
        c.taken.insert(id.clone());
        c.id.push(id);
        c.company_name.push(company);
        c.contact_name.push(format!(
            "{} {}",
            rng.pick(&FIRST_NAMES),
            rng.pick(&LAST_NAMES)
        ));
        c.contact_title
            .push(CONTACT_TITLES[rng.weighted(&title_w)].0);
        c.address.push(street_address(&mut rng, country.style));
        c.city.push(city);
        c.region.push(region);
        c.postal_code
            .push(country.postal.map(|t| fill(&mut rng, t, city, region)));
        c.country.push(Some(country.name));
        c.clean_country.push(country.name);
        let phone = fill(&mut rng, country.phone, city, region);
        let fax = if rng.chance(0.75) {
            Some(fax_of(&mut rng, &phone))
        } else {
            None
        };
        c.phone.push(phone);
        c.fax.push(fax);
    }

    // Defects.
    let mut used = vec![false; n];
    let k_alias = defect_count(n, rates::COUNTRY_ALIAS, 1);
    let candidates: Vec<Vec<usize>> = COUNTRY_ALIASES
        .iter()
        .map(|&(_, target)| {
            (0..n)
                .filter(|&i| c.clean_country[i] == target)
                .collect::<Vec<usize>>()
        })
        .collect();
    for j in 0..k_alias {
        let a = j % COUNTRY_ALIASES.len();
        if let Some(i) = pick_from(&mut rng, &candidates[a], &mut used) {
            c.country[i] = Some(COUNTRY_ALIASES[a].0);
        }
    }
    for i in pick_free(&mut rng, &mut used, defect_count(n, rates::NULL_COUNTRY, 1)) {
        c.country[i] = None;
    }
    for i in pick_free(
        &mut rng,
        &mut used,
        defect_count(n, rates::EMPTY_COUNTRY, 1),
    ) {
        c.country[i] = Some("");
    }
    c
}

impl Customers {
    fn len(&self) -> usize {
        self.id.len()
    }

    fn frame(&self) -> Result<DataFrame> {
        Ok(DataFrame::new_infer_height(vec![
            named("customer_id", &self.id),
            named("company_name", &self.company_name),
            named("contact_name", &self.contact_name),
            named("contact_title", &self.contact_title),
            named("address", &self.address),
            named("city", &self.city),
            named("region", &self.region),
            named("postal_code", &self.postal_code),
            named("country", &self.country),
            named("phone", &self.phone),
            named("fax", &self.fax),
        ])?)
    }
}

// ---------------------------------------------------------------------------------------
// Orders
// ---------------------------------------------------------------------------------------

struct Orders {
    n: usize,
    /// The customer each order belongs to (its ship columns come from there).
    customer: Vec<u32>,
    /// Bad customer ids replacing the real one: (position, value).
    bad_customer_id: Vec<(usize, String)>,
    employee_id: Vec<i32>,
    order_date: Vec<Option<i32>>,
    required_date: Vec<i32>,
    shipped_date: Vec<Option<i32>>,
    ship_via: Vec<i32>,
    freight: Vec<f32>,
}

/// Orders per employee in the dump (employees 1..=9).
const EMPLOYEE_WEIGHTS: [u32; 9] = [123, 96, 127, 156, 42, 67, 72, 104, 43];
/// Orders per shipper in the dump (shippers 1..=3).
const SHIPPER_WEIGHTS: [u32; 3] = [249, 326, 255];

fn gen_orders(n: usize, seed: u64, customers: &Customers) -> Orders {
    let mut rng = SplitMix64::stream(seed, STREAM_ORDERS);
    let n_cust = customers.len();

    // Customers: the inactive ones get no order, the others at least 2, the remainder by a
    // log-normal activity; then the assignment is shuffled over time.
    let mut inactive = vec![false; n_cust];
    pick_free(
        &mut rng,
        &mut inactive,
        defect_count(n_cust, rates::INACTIVE_CUSTOMER, 1),
    );
    let active: Vec<u32> = (0..n_cust)
        .filter(|&i| !inactive[i])
        .map(|i| i as u32)
        .collect();
    let mut customer: Vec<u32> = Vec::with_capacity(n);
    for &c in &active {
        if customer.len() + 2 <= n {
            customer.push(c);
            customer.push(c);
        }
    }
    let mut cumulative = Vec::with_capacity(active.len());
    let mut total = 0.0f64;
    for _ in &active {
        total += (0.7 * rng.normal()).exp();
        cumulative.push(total);
    }
    while customer.len() < n {
        let x = rng.unit() * total;
        let k = cumulative
            .partition_point(|&v| v <= x)
            .min(active.len().saturating_sub(1));
        customer.push(active.get(k).copied().unwrap_or(0));
    }
    rng.shuffle(&mut customer);

    // Dates: density growing linearly (×3 from the first day to the last), quantiles with
    // jitter so that they are sorted like the order ids.
    let span = (LAST_ORDER_DAY - FIRST_ORDER_DAY) as f64;
    let mut order_day: Vec<i32> = (0..n)
        .map(|i| {
            let u = (i as f64 + rng.unit()) / n as f64;
            let t = ((1.0 + 8.0 * u).sqrt() - 1.0) / 2.0;
            FIRST_ORDER_DAY + ((t * (span + 1.0)).floor() as i32).min(span as i32)
        })
        .collect();
    if let Some(first) = order_day.first_mut() {
        *first = FIRST_ORDER_DAY;
    }
    if let Some(last) = order_day.last_mut() {
        *last = LAST_ORDER_DAY;
    }

    let mut employee_id = Vec::with_capacity(n);
    let mut required_date = Vec::with_capacity(n);
    let mut shipped_date = Vec::with_capacity(n);
    let mut ship_via = Vec::with_capacity(n);
    let mut freight = Vec::with_capacity(n);
    for &day in &order_day {
        employee_id.push(1 + rng.weighted(&EMPLOYEE_WEIGHTS) as i32);
        required_date.push(day + 28);
        shipped_date.push(Some(day + rng.range_i32(1, 30)));
        ship_via.push(1 + rng.weighted(&SHIPPER_WEIGHTS) as i32);
        let f = (3.7 + 1.15 * rng.normal()).exp().clamp(0.02, 1100.0);
        freight.push(((f * 100.0).round() / 100.0) as f32);
    }

    // Pending orders among the last tenth.
    let tail_start = n - (n / 10).max(1);
    let mut tail_used = vec![false; n - tail_start];
    for i in pick_free(
        &mut rng,
        &mut tail_used,
        defect_count(n, rates::UNSHIPPED, 1),
    ) {
        shipped_date[tail_start + i] = None;
    }

    // Defects.
    let mut order_date: Vec<Option<i32>> = order_day.into_iter().map(Some).collect();
    let mut used = vec![false; n];
    for i in pick_free(
        &mut rng,
        &mut used,
        defect_count(n, rates::NULL_ORDER_DATE, 1),
    ) {
        order_date[i] = None;
    }
    let bad = pick_free(
        &mut rng,
        &mut used,
        defect_count(n, rates::BAD_CUSTOMER_ID, 3),
    );
    let bad_customer_id = bad
        .into_iter()
        .enumerate()
        .map(|(j, i)| {
            let value = match j % 3 {
                0 => loop {
                    let id: String = (0..5).map(|_| char::from(rng.upper())).collect();
                    if !customers.taken.contains(&id) {
                        break id;
                    }
                },
                1 => "  ".to_string(),
                _ => String::new(),
            };
            (i, value)
        })
        .collect();

    Orders {
        n,
        customer,
        bad_customer_id,
        employee_id,
        order_date,
        required_date,
        shipped_date,
        ship_via,
        freight,
    }
}

impl Orders {
    fn frame(
        &self,
        customers: &Customers,
        customers_df: &DataFrame,
        wide: bool,
    ) -> Result<DataFrame> {
        let ids: Vec<i32> = (0..self.n).map(|i| FIRST_ORDER_ID + i as i32).collect();
        let mut customer_id: Vec<&str> = self
            .customer
            .iter()
            .map(|&c| customers.id[c as usize].as_str())
            .collect();
        for (i, value) in &self.bad_customer_id {
            customer_id[*i] = value.as_str();
        }

        // Ship columns: the customer's, gathered by index, with its clean country.
        let ship = DataFrame::new_infer_height(vec![
            customers_df
                .column("company_name")?
                .clone()
                .with_name("ship_name".into()),
            customers_df
                .column("address")?
                .clone()
                .with_name("ship_address".into()),
            customers_df
                .column("city")?
                .clone()
                .with_name("ship_city".into()),
            customers_df
                .column("region")?
                .clone()
                .with_name("ship_region".into()),
            customers_df
                .column("postal_code")?
                .clone()
                .with_name("ship_postal_code".into()),
            named("ship_country", &customers.clean_country),
        ])?;
        let idx: Vec<IdxSize> = self.customer.iter().map(|&c| c as IdxSize).collect();
        let ship = ship.take(&IdxCa::from_vec("idx".into(), idx))?;

        let mut columns = vec![
            id_column("order_id", &ids, wide)?,
            named("customer_id", &customer_id),
            id_column("employee_id", &self.employee_id, wide)?,
            opt_date_column("order_date", &self.order_date),
            date_column("required_date", self.required_date.clone()),
            opt_date_column("shipped_date", &self.shipped_date),
            id_column("ship_via", &self.ship_via, wide)?,
            Series::new("freight".into(), &self.freight).into_column(),
        ];
        columns.extend(ship.into_columns());
        Ok(DataFrame::new_infer_height(columns)?)
    }
}

// ---------------------------------------------------------------------------------------
// Order lines
// ---------------------------------------------------------------------------------------

struct Lines {
    order_id: Vec<i32>,
    product_id: Vec<i32>,
    unit_price: Vec<f32>,
    quantity: Vec<i16>,
    discount: Vec<Option<f32>>,
}

/// Weights of 1..=6 lines per order (mean ≈ 2.6, close to the dump's).
const LINES_PER_ORDER_WEIGHTS: [u32; 6] = [130, 280, 250, 130, 35, 5];
/// "Round" quantities and their weights (the dump favours multiples of 5).
const ROUND_QUANTITIES: [i16; 16] = [
    5, 10, 12, 15, 20, 24, 25, 30, 35, 40, 50, 60, 70, 80, 100, 120,
];
const ROUND_QUANTITY_WEIGHTS: [u32; 16] = [
    67, 181, 92, 169, 252, 58, 80, 194, 71, 60, 50, 40, 25, 15, 8, 3,
];
const DISCOUNTS: [f32; 5] = [0.05, 0.1, 0.15, 0.2, 0.25];

/// 55 % "round" quantities, else log-normal (median 18), clamped to 1..=120.
fn quantity(rng: &mut SplitMix64) -> i16 {
    if rng.chance(0.55) {
        ROUND_QUANTITIES[rng.weighted(&ROUND_QUANTITY_WEIGHTS)]
    } else {
        (2.9 + 0.75 * rng.normal()).exp().round().clamp(1.0, 120.0) as i16
    }
}

/// The id of an order that does not exist, for the `j`-th orphan line: 10247 downwards,
/// then above the last order.
fn orphan_order_id(j: usize, last_order_id: i32) -> i32 {
    if j < 10_000 {
        FIRST_ORDER_ID - 1 - j as i32
    } else {
        last_order_id + 1 + (j - 10_000) as i32
    }
}

fn gen_lines(n_orders: usize, seed: u64) -> Lines {
    let mut rng = SplitMix64::stream(seed, STREAM_LINES);
    let cap = n_orders * 27 / 10;
    let mut base = Lines {
        order_id: Vec::with_capacity(cap),
        product_id: Vec::with_capacity(cap),
        unit_price: Vec::with_capacity(cap),
        quantity: Vec::with_capacity(cap),
        discount: Vec::with_capacity(cap),
    };
    for o in 0..n_orders {
        let k = 1 + rng.weighted(&LINES_PER_ORDER_WEIGHTS);
        let mut chosen = [0usize; 6];
        let mut m = 0;
        while m < k {
            let p = rng.index(PRODUCTS.len());
            if !chosen[..m].contains(&p) {
                chosen[m] = p;
                m += 1;
            }
        }
        chosen[..k].sort_unstable();
        for &p in &chosen[..k] {
            let product = &PRODUCTS[p];
            base.order_id.push(FIRST_ORDER_ID + o as i32);
            base.product_id.push(product.id);
            base.unit_price.push(product.unit_price);
            base.quantity.push(quantity(&mut rng));
            base.discount.push(Some(if rng.chance(0.61) {
                0.0
            } else {
                rng.pick(&DISCOUNTS)
            }));
        }
    }

    // In-place defects.
    let l = base.order_id.len();
    let mut used = vec![false; l];
    let picks = |rng: &mut SplitMix64, used: &mut [bool], rate: f64| {
        pick_free(rng, used, defect_count(l, rate, 1))
    };
    for (j, i) in picks(&mut rng, &mut used, rates::ORPHAN_PRODUCT)
        .into_iter()
        .enumerate()
    {
        base.product_id[i] = ORPHAN_PRODUCT_IDS[j % ORPHAN_PRODUCT_IDS.len()];
    }
    for i in picks(&mut rng, &mut used, rates::ZERO_QUANTITY) {
        base.quantity[i] = 0;
    }
    for i in picks(&mut rng, &mut used, rates::NULL_DISCOUNT) {
        base.discount[i] = None;
    }
    for i in picks(&mut rng, &mut used, rates::NEGATIVE_PRICE) {
        base.unit_price[i] = -base.unit_price[i];
    }
    for i in picks(&mut rng, &mut used, rates::DISCOUNT_OVER_ONE) {
        base.discount[i] = Some(1.5);
    }

    // Extra lines: 1 = exact duplicate, 2 = copy under an order id that does not exist.
    let mut extra = vec![0u8; l];
    for i in picks(&mut rng, &mut used, rates::DUPLICATE_LINE) {
        extra[i] = 1;
    }
    for i in picks(&mut rng, &mut used, rates::ORPHAN_ORDER) {
        extra[i] = 2;
    }
    let n_extra = extra.iter().filter(|&&e| e != 0).count();
    let last_order_id = FIRST_ORDER_ID + n_orders as i32 - 1;
    let mut out = Lines {
        order_id: Vec::with_capacity(l + n_extra),
        product_id: Vec::with_capacity(l + n_extra),
        unit_price: Vec::with_capacity(l + n_extra),
        quantity: Vec::with_capacity(l + n_extra),
        discount: Vec::with_capacity(l + n_extra),
    };
    let mut orphans = 0;
    for (i, &e) in extra.iter().enumerate() {
        let copies = if e == 0 { 1 } else { 2 };
        for c in 0..copies {
            let order_id = if e == 2 && c == 1 {
                orphans += 1;
                orphan_order_id(orphans - 1, last_order_id)
            } else {
                base.order_id[i]
            };
            out.order_id.push(order_id);
            out.product_id.push(base.product_id[i]);
            out.unit_price.push(base.unit_price[i]);
            out.quantity.push(base.quantity[i]);
            out.discount.push(base.discount[i]);
        }
    }
    out
}

impl Lines {
    fn frame(&self, wide: bool) -> Result<DataFrame> {
        Ok(DataFrame::new_infer_height(vec![
            id_column("order_id", &self.order_id, wide)?,
            id_column("product_id", &self.product_id, wide)?,
            Series::new("unit_price".into(), &self.unit_price).into_column(),
            Series::new("quantity".into(), &self.quantity).into_column(),
            Series::new("discount".into(), &self.discount).into_column(),
        ])?)
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------

/// A table of the dump: its columns (name, SQL type; `{id}` is the id type) and primary key.
struct TableDef {
    name: &'static str,
    columns: &'static [(&'static str, &'static str)],
    primary_key: Option<&'static str>,
}

/// Column definitions of the six tables as in the dump.
const TABLE_COLUMNS: [TableDef; 6] = [
    TableDef {
        name: "categories",
        columns: &[
            ("category_id", "{id} NOT NULL"),
            ("category_name", "character varying(15) NOT NULL"),
            ("description", "text"),
            ("picture", "bytea"),
        ],
        primary_key: Some("category_id"),
    },
    TableDef {
        name: "customers",
        columns: &[
            ("customer_id", "character varying(5) NOT NULL"),
            ("company_name", "character varying(40) NOT NULL"),
            ("contact_name", "character varying(30)"),
            ("contact_title", "character varying(30)"),
            ("address", "character varying(60)"),
            ("city", "character varying(15)"),
            ("region", "character varying(15)"),
            ("postal_code", "character varying(10)"),
            ("country", "character varying(15)"),
            ("phone", "character varying(24)"),
            ("fax", "character varying(24)"),
        ],
        primary_key: Some("customer_id"),
    },
    TableDef {
        name: "employees",
        columns: &[
            ("employee_id", "{id} NOT NULL"),
            ("last_name", "character varying(20) NOT NULL"),
            ("first_name", "character varying(10) NOT NULL"),
            ("title", "character varying(30)"),
            ("title_of_courtesy", "character varying(25)"),
            ("birth_date", "date"),
            ("hire_date", "date"),
            ("address", "character varying(60)"),
            ("city", "character varying(15)"),
            ("region", "character varying(15)"),
            ("postal_code", "character varying(10)"),
            ("country", "character varying(15)"),
            ("home_phone", "character varying(24)"),
            ("extension", "character varying(4)"),
            ("photo", "bytea"),
            ("notes", "text"),
            ("reports_to", "{id}"),
            ("photo_path", "character varying(255)"),
        ],
        primary_key: Some("employee_id"),
    },
    TableDef {
        name: "orders",
        columns: &[
            ("order_id", "{id} NOT NULL"),
            ("customer_id", "character varying(5)"),
            ("employee_id", "{id}"),
            ("order_date", "date"),
            ("required_date", "date"),
            ("shipped_date", "date"),
            ("ship_via", "{id}"),
            ("freight", "real"),
            ("ship_name", "character varying(40)"),
            ("ship_address", "character varying(60)"),
            ("ship_city", "character varying(15)"),
            ("ship_region", "character varying(15)"),
            ("ship_postal_code", "character varying(10)"),
            ("ship_country", "character varying(15)"),
        ],
        primary_key: Some("order_id"),
    },
    TableDef {
        name: "order_details",
        columns: &[
            ("order_id", "{id} NOT NULL"),
            ("product_id", "{id} NOT NULL"),
            ("unit_price", "real NOT NULL"),
            ("quantity", "smallint NOT NULL"),
            ("discount", "real"),
        ],
        primary_key: None,
    },
    TableDef {
        name: "products",
        columns: &[
            ("product_id", "{id} NOT NULL"),
            ("product_name", "character varying(40) NOT NULL"),
            ("supplier_id", "{id}"),
            ("category_id", "{id}"),
            ("quantity_per_unit", "character varying(20)"),
            ("unit_price", "real"),
            ("units_in_stock", "smallint"),
            ("units_on_order", "smallint"),
            ("reorder_level", "smallint"),
            ("discontinued", "integer NOT NULL"),
        ],
        primary_key: Some("product_id"),
    },
];

/// The column names of a table, in DDL order.
pub fn table_columns(table: &str) -> Option<Vec<&'static str>> {
    TABLE_COLUMNS
        .iter()
        .find(|t| t.name == table)
        .map(|t| t.columns.iter().map(|(c, _)| *c).collect())
}

/// DDL for the six tables: the dump's names, types and column order (ids widened to
/// `integer` when [`Northwind::id_dtype`] is `Int32`), the dump's primary keys except on
/// `order_details` (duplicates are injected), `order_details.discount` nullable, and no
/// foreign keys (orphans are injected).
pub fn ddl(nw: &Northwind) -> String {
    let id = if nw.id_dtype() == DataType::Int32 {
        "integer"
    } else {
        "smallint"
    };
    let mut out = String::new();
    for TableDef {
        name: table,
        columns: cols,
        primary_key: pk,
    } in &TABLE_COLUMNS
    {
        out.push_str(&format!("CREATE TABLE {table} (\n"));
        let mut lines: Vec<String> = cols
            .iter()
            .map(|(c, ty)| format!("    {c} {}", ty.replace("{id}", id)))
            .collect();
        if let Some(pk) = pk {
            lines.push(format!("    CONSTRAINT pk_{table} PRIMARY KEY ({pk})"));
        }
        out.push_str(&lines.join(",\n"));
        out.push_str("\n);\n\n");
    }
    out
}
