//! `silver/sales_master`: one row per valid order line (data contract,
//! section 4), and `silver/_rejects/sales_master`: every other line with the
//! reason it cannot be a sale.
//!
//! [`classify`] joins the five bronze tables and gives every order line a
//! [`REJECT_CODE`] (null for a valid line); [`sales_master`] and
//! [`rejects`] split that one frame, so every input line lands in exactly
//! one output. All three are pure lazy transformations.

use chrono::{DateTime, Utc};
use lake_core::country::{country_code, standardized_country_name};
use lake_table::schema::Expect;
use polars::prelude::*;

/// Columns silver needs from each bronze table, with the types it accepts.
pub const ORDER_DETAILS_COLUMNS: &[(&str, Expect)] = &[
    ("order_id", Expect::Key),
    ("product_id", Expect::Key),
    ("unit_price", Expect::Number),
    ("quantity", Expect::Integer),
    ("discount", Expect::Number),
];
pub const ORDERS_COLUMNS: &[(&str, Expect)] = &[
    ("order_id", Expect::Key),
    ("customer_id", Expect::Key),
    ("employee_id", Expect::Key),
    ("order_date", Expect::Date),
    ("required_date", Expect::Date),
    ("shipped_date", Expect::Date),
];
pub const PRODUCTS_COLUMNS: &[(&str, Expect)] = &[
    ("product_id", Expect::Key),
    ("product_name", Expect::Text),
    ("category_id", Expect::Key),
];
pub const CATEGORIES_COLUMNS: &[(&str, Expect)] = &[
    ("category_id", Expect::Key),
    ("category_name", Expect::Text),
];
pub const CUSTOMERS_COLUMNS: &[(&str, Expect)] = &[
    ("customer_id", Expect::Key),
    ("company_name", Expect::Text),
    ("city", Expect::Text),
    ("country", Expect::Text),
];

/// Reject reasons, in the order the rules are tried (first match wins).
/// While lines are classified a reason travels as its index here (see
/// [`REJECT_CODE`]): comparing integers is much cheaper than choosing
/// among strings on every line, and only rejected lines get the text.
pub const REJECT_REASONS: [&str; 8] = [
    "orphan_order",
    "orphan_product",
    "unknown_customer",
    "missing_order_date",
    "invalid_quantity",
    "invalid_unit_price",
    "invalid_discount",
    "duplicate_line",
];

/// Category name of a line whose product has no category or an unknown one.
pub const UNCATEGORIZED: &str = "Uncategorized";

/// Bronze's column of a row's 0-based position in the run's read of its
/// source table (contract, section 3): the source read order of the
/// `duplicate_line` rule. Bronze dates written before the column existed
/// lack it (or, read through a table that gained it later, hold nulls in
/// it); there the order the lines are read in stands for it.
pub const SOURCE_ROW: &str = "_source_row";

/// Column holding the reason in rejects.
pub const REJECT_REASON: &str = "reject_reason";

/// Column of the classified frame holding the reason's index in
/// [`REJECT_REASONS`] (Int32), null for a valid line.
pub const REJECT_CODE: &str = "__reject_code";

/// The five bronze inputs of sales_master.
pub struct SalesInputs {
    pub order_details: LazyFrame,
    pub orders: LazyFrame,
    pub products: LazyFrame,
    pub categories: LazyFrame,
    pub customers: LazyFrame,
}

/// The dimensions an order line is joined with, one row per key: products
/// with their category, and customers with their standardized country.
/// They are small, so a run that classifies its lines in slices prepares
/// them once ([`dimensions`]) for every slice.
#[derive(Clone)]
pub struct Dimensions {
    pub products: LazyFrame,
    pub customers: LazyFrame,
}

// Internal columns carry a `__` prefix so they never collide with source
// columns (bronze's own metadata uses a single `_`).
const LINE_NO: &str = "__line_no";
const SOURCE_ROW_OF_LINE: &str = "__source_row";
const ORDER_KEY: &str = "__order_key";
const PRODUCT_KEY: &str = "__product_key";
const CATEGORY_KEY: &str = "__category_key";
const CUSTOMER_KEY: &str = "__customer_key";
const ORDER_FOUND: &str = "__order_found";
const PRODUCT_FOUND: &str = "__product_found";
const CUSTOMER_FOUND: &str = "__customer_found";
const ORDER_ROW: &str = "__order_row";
const PRODUCT_ROW: &str = "__product_row";
const LINE_KEY: &str = "__line_key";
const REPEATS_A_LINE: &str = "__repeats_a_line";

/// The code of a reject reason, as [`REJECT_CODE`] holds it.
fn code_of(reason: &str) -> Expr {
    let index = REJECT_REASONS
        .iter()
        .position(|r| *r == reason)
        .expect("a reason of REJECT_REASONS");
    lit(index as i32)
}

/// The text of a [`REJECT_CODE`].
fn reason_text(code: Expr) -> Expr {
    REJECT_REASONS.iter().enumerate().rev().fold(
        lit(NULL).cast(DataType::String),
        |otherwise, (index, reason)| {
            when(code.clone().eq(lit(index as i32)))
                .then(lit(*reason))
                .otherwise(otherwise)
        },
    )
}

/// An integer id as Int64: text ids are trimmed first (ids are trimmed on
/// both sides of every join); a text that is not a number gives null, which
/// no join matches.
pub fn int_key(schema: &Schema, name: &str) -> Expr {
    match schema.get(name) {
        Some(DataType::String) => col(name).str().strip_chars(lit(NULL)).cast(DataType::Int64),
        _ => col(name).cast(DataType::Int64),
    }
}

/// The rows whose integer id `name` ([`int_key`]) lies in `first..=last`,
/// plus, when `with_nulls`, those without a usable id. On an integer
/// column the bounds compare with the column itself, so a reader can skip
/// the row groups whose statistics fall outside them.
pub fn key_in_range(schema: &Schema, name: &str, first: i64, last: i64, with_nulls: bool) -> Expr {
    let key = match schema.get(name) {
        Some(dtype) if dtype.is_integer() => col(name),
        _ => int_key(schema, name),
    };
    let in_range = key
        .clone()
        .gt_eq(lit(first))
        .and(key.clone().lt_eq(lit(last)));
    if with_nulls {
        in_range.or(int_key(schema, name).is_null())
    } else {
        in_range
    }
}

/// A text id, trimmed; empty means none.
fn text_key(schema: &Schema, name: &str) -> Expr {
    let text = match schema.get(name) {
        Some(DataType::String) => col(name),
        _ => col(name).cast(DataType::String),
    };
    let trimmed = text.str().strip_chars(lit(NULL));
    when(trimmed.clone().eq(lit("")))
        .then(lit(NULL).cast(DataType::String))
        .otherwise(trimmed)
}

fn trimmed(name: &str) -> Expr {
    col(name).str().strip_chars(lit(NULL))
}

fn left_join(
    left: LazyFrame,
    right: LazyFrame,
    keys_left: &[&str],
    keys_right: &[&str],
) -> LazyFrame {
    let mut args = JoinArgs::new(JoinType::Left);
    args.maintain_order = MaintainOrderJoin::Left;
    let on = |keys: &[&str]| keys.iter().map(|k| col(*k)).collect::<Vec<_>>();
    left.join(right, on(keys_left), on(keys_right), args)
}

/// One row per key: the first in source order wins, so a duplicated
/// dimension row can never multiply order lines.
fn first_per_key(lf: LazyFrame, key: &str) -> LazyFrame {
    lf.filter(col(key).is_not_null())
        .unique_stable_generic(Some(vec![col(key)]), UniqueKeepStrategy::First)
}

fn schema_of(lf: &mut LazyFrame) -> PolarsResult<SchemaRef> {
    lf.collect_schema()
}

/// The products with their category, and the customers with their
/// standardized country, one row per id.
pub fn dimensions(
    mut products: LazyFrame,
    mut categories: LazyFrame,
    mut customers: LazyFrame,
) -> PolarsResult<Dimensions> {
    let products_schema = schema_of(&mut products)?;
    let categories_schema = schema_of(&mut categories)?;
    let customers_schema = schema_of(&mut customers)?;
    let products = first_per_key(
        products.select([
            int_key(&products_schema, "product_id").alias(PRODUCT_KEY),
            trimmed("product_name").alias("__product_name"),
            int_key(&products_schema, "category_id").alias(CATEGORY_KEY),
            lit(true).alias(PRODUCT_FOUND),
        ]),
        PRODUCT_KEY,
    );
    let categories = first_per_key(
        categories.select([
            int_key(&categories_schema, "category_id").alias("__category_join"),
            trimmed("category_name").alias("__category_name"),
        ]),
        "__category_join",
    );
    let customers = first_per_key(
        customers.select([
            text_key(&customers_schema, "customer_id").alias("__customer_join"),
            col("company_name").alias("__company_name"),
            col("city").alias("__city"),
            standardized_country_name(col("country")).alias("__country"),
            country_code(col("country")).alias("__country_code"),
            lit(true).alias(CUSTOMER_FOUND),
        ]),
        "__customer_join",
    );
    Ok(Dimensions {
        products: left_join(products, categories, &[CATEGORY_KEY], &["__category_join"])
            .with_row_index(PRODUCT_ROW, None),
        customers,
    })
}

/// Every order line with its joined attributes and [`REJECT_CODE`].
pub fn classify(inputs: SalesInputs) -> PolarsResult<LazyFrame> {
    let dimensions = dimensions(inputs.products, inputs.categories, inputs.customers)?;
    classify_lines(inputs.order_details, inputs.orders, &dimensions)
}

/// [`classify`] with the dimensions already prepared.
pub fn classify_lines(
    mut order_details: LazyFrame,
    mut orders: LazyFrame,
    dimensions: &Dimensions,
) -> PolarsResult<LazyFrame> {
    let details_schema = schema_of(&mut order_details)?;
    let orders_schema = schema_of(&mut orders)?;

    // Only the columns the rules need travel through the joins; rejects
    // take the full rows back by line number.
    let has_source_row = details_schema.contains(SOURCE_ROW);
    let mut line_columns = vec![
        col(LINE_NO),
        int_key(&details_schema, "order_id").alias(ORDER_KEY),
        int_key(&details_schema, "product_id").alias(PRODUCT_KEY),
        col("unit_price")
            .cast(DataType::Float64)
            .alias("__unit_price"),
        col("quantity").cast(DataType::Int64).alias("__quantity"),
        col("discount")
            .cast(DataType::Float64)
            .fill_null(lit(0.0))
            .alias("__discount"),
    ];
    if has_source_row {
        line_columns.push(
            col(SOURCE_ROW)
                .cast(DataType::Int64)
                .alias(SOURCE_ROW_OF_LINE),
        );
    }
    let lines = order_details
        .with_row_index(LINE_NO, None)
        .select(line_columns);
    let orders = first_per_key(
        orders.select([
            int_key(&orders_schema, "order_id").alias(ORDER_KEY),
            text_key(&orders_schema, "customer_id").alias(CUSTOMER_KEY),
            int_key(&orders_schema, "employee_id").alias("__employee_id"),
            col("order_date").alias("__order_date"),
            col("required_date").alias("__required_date"),
            col("shipped_date").alias("__shipped_date"),
            lit(true).alias(ORDER_FOUND),
        ]),
        ORDER_KEY,
    );
    // An order has one customer: joined per order, the text key is hashed
    // once per order rather than once per line. The row number gives each
    // order a dense integer for the duplicate rule below.
    let orders = left_join(
        orders,
        dimensions.customers.clone(),
        &[CUSTOMER_KEY],
        &["__customer_join"],
    )
    .with_row_index(ORDER_ROW, None);

    let joined = left_join(lines, orders, &[ORDER_KEY], &[ORDER_KEY]);
    let joined = left_join(
        joined,
        dimensions.products.clone(),
        &[PRODUCT_KEY],
        &[PRODUCT_KEY],
    );

    let quantity = col("__quantity");
    let price = col("__unit_price");
    let discount = col("__discount");
    let code = when(col(ORDER_FOUND).is_null())
        .then(code_of("orphan_order"))
        .when(col(PRODUCT_FOUND).is_null())
        .then(code_of("orphan_product"))
        .when(col(CUSTOMER_FOUND).is_null())
        .then(code_of("unknown_customer"))
        .when(col("__order_date").is_null())
        .then(code_of("missing_order_date"))
        .when(quantity.clone().is_null().or(quantity.lt_eq(lit(0))))
        .then(code_of("invalid_quantity"))
        .when(
            price
                .clone()
                .is_null()
                .or(price.clone().is_finite().not())
                .or(price.lt(lit(0.0))),
        )
        .then(code_of("invalid_unit_price"))
        .when(
            discount
                .clone()
                .is_nan()
                .or(discount.clone().lt(lit(0.0)))
                .or(discount.gt(lit(1.0))),
        )
        .then(code_of("invalid_discount"))
        .otherwise(lit(NULL).cast(DataType::Int32));
    let classified = joined.with_column(code.alias(REJECT_CODE)).drop(cols([
        ORDER_FOUND,
        PRODUCT_FOUND,
        CUSTOMER_FOUND,
    ]));

    // duplicate_line: among lines passing every other rule, only the first
    // in source read order of each (order_id, product_id) is a sale. A
    // valid line has both an order and a product row (a missing one is an
    // orphan); their row numbers, both below 2^32, pack into one exact
    // UInt64 key. Sorted by that key, then by `_source_row` (bronze's
    // number of the line in its read of the source, so that an engine
    // reading files in parallel agrees), stably, a line with the key of
    // the line before it repeats an earlier one. Without `_source_row`
    // (bronze dates written before the column existed), or where it is
    // null, the stable sort keeps the order the lines were read in (the
    // joins kept it): file order, then row order in each file, as before
    // the column existed. Only the repeating lines (few) are joined back.
    // A group-by over every line cost several times more: it builds a
    // group for each of them.
    let line_key = col(ORDER_ROW).cast(DataType::UInt64) * lit(1u64 << 32)
        + col(PRODUCT_ROW).cast(DataType::UInt64);
    let mut sort_by = vec![LINE_KEY];
    let mut valid_line_columns = vec![col(LINE_NO), line_key.alias(LINE_KEY)];
    if has_source_row {
        sort_by.push(SOURCE_ROW_OF_LINE);
        valid_line_columns.push(col(SOURCE_ROW_OF_LINE));
    }
    let repeats = classified
        .clone()
        .filter(col(REJECT_CODE).is_null())
        .select(valid_line_columns)
        .sort(
            sort_by,
            SortMultipleOptions::default()
                .with_maintain_order(true)
                .with_nulls_last(true),
        )
        .filter(col(LINE_KEY).eq(col(LINE_KEY).shift(lit(1))))
        .select([col(LINE_NO), lit(true).alias(REPEATS_A_LINE)]);
    let mut internal = vec![REPEATS_A_LINE, ORDER_ROW, PRODUCT_ROW];
    if has_source_row {
        internal.push(SOURCE_ROW_OF_LINE);
    }
    Ok(left_join(classified, repeats, &[LINE_NO], &[LINE_NO])
        .with_column(
            when(col(REPEATS_A_LINE).is_not_null())
                .then(code_of("duplicate_line"))
                .otherwise(col(REJECT_CODE))
                .alias(REJECT_CODE),
        )
        .drop(cols(internal)))
}

fn timestamp_literal(at: DateTime<Utc>) -> Expr {
    lit(at.timestamp_micros()).cast(DataType::Datetime(
        TimeUnit::Microseconds,
        Some(TimeZone::UTC),
    ))
}

/// The valid lines, with the contract's columns and types.
pub fn sales_master(classified: LazyFrame, processed_at: DateTime<Utc>) -> LazyFrame {
    classified.filter(col(REJECT_CODE).is_null()).select([
        col(ORDER_KEY).alias("order_id"),
        col(PRODUCT_KEY).alias("product_id"),
        col(CUSTOMER_KEY).alias("customer_id"),
        col("__employee_id").alias("employee_id"),
        col("__order_date").cast(DataType::Date).alias("order_date"),
        col("__required_date")
            .cast(DataType::Date)
            .alias("required_date"),
        col("__shipped_date")
            .cast(DataType::Date)
            .alias("shipped_date"),
        col("__product_name").alias("product_name"),
        col(CATEGORY_KEY).alias("category_id"),
        col("__category_name")
            .fill_null(lit(UNCATEGORIZED))
            .alias("category_name"),
        col("__company_name").alias("company_name"),
        col("__city").alias("city"),
        col("__country").alias("country"),
        col("__country_code").alias("country_code"),
        col("__unit_price").alias("unit_price"),
        col("__discount").alias("discount"),
        col("__quantity").alias("quantity"),
        (col("__unit_price")
            * col("__quantity").cast(DataType::Float64)
            * (lit(1.0) - col("__discount")))
        .alias("line_total"),
        timestamp_literal(processed_at).alias("_processed_at"),
    ])
}

/// The rejected lines: every order_details column as read (in source
/// order), the reason and when it was rejected.
pub fn rejects(
    order_details: LazyFrame,
    classified: LazyFrame,
    rejected_at: DateTime<Utc>,
) -> LazyFrame {
    let reasons = classified.filter(col(REJECT_CODE).is_not_null()).select([
        col(LINE_NO),
        reason_text(col(REJECT_CODE)).alias(REJECT_REASON),
    ]);
    let mut args = JoinArgs::new(JoinType::Inner);
    args.maintain_order = MaintainOrderJoin::Left;
    order_details
        .with_row_index(LINE_NO, None)
        .join(reasons, [col(LINE_NO)], [col(LINE_NO)], args)
        .drop(cols([LINE_NO]))
        .with_column(timestamp_literal(rejected_at).alias("_rejected_at"))
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};
    use lake_core::display::render;

    use super::*;

    fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, d)
    }

    /// Order lines exercising every reject rule, in rule order, plus the
    /// cases that must stay valid (null discount, unknown category, padded
    /// customer id, a duplicate whose first occurrence was rejected).
    fn inputs() -> SalesInputs {
        let order_details = df!(
            "order_id" => [Some(1i16), Some(99), Some(1), Some(2), Some(3), Some(4), Some(1), Some(1), Some(1), Some(1), Some(5), Some(5), Some(6), Some(1), Some(7), Some(8), Some(8), Some(9), None],
            "product_id" => [Some(10i16), Some(10), Some(77), Some(10), Some(10), Some(10), Some(11), Some(12), Some(13), Some(10), Some(11), Some(12), Some(13), Some(14), Some(10), Some(10), Some(10), Some(13), Some(10)],
            "unit_price" => [Some(10.0f32), Some(5.0), Some(5.0), Some(5.0), Some(5.0), Some(5.0), Some(5.0), Some(-1.0), Some(5.0), Some(10.0), Some(4.0), Some(2.5), Some(3.0), None, Some(1.0), Some(5.0), Some(5.0), Some(2.0), Some(1.0)],
            "quantity" => [Some(2i16), Some(1), Some(1), Some(1), Some(1), Some(1), Some(0), Some(1), Some(1), Some(3), Some(1), Some(4), Some(2), Some(1), Some(-2), Some(0), Some(2), Some(5), Some(1)],
            "discount" => [Some(0.0f32), Some(0.0), Some(0.0), Some(0.0), Some(0.0), Some(0.0), Some(0.0), Some(0.0), Some(1.5), Some(0.1), None, Some(0.25), Some(0.0), Some(0.0), Some(0.0), Some(0.0), Some(0.0), Some(0.05), Some(0.0)],
        )
        .unwrap();
        let orders = df!(
            "order_id" => [1i16, 2, 3, 4, 5, 6, 7, 8, 9, 1],
            "customer_id" => [Some("ALFKI"), Some("ZZZZZ"), None, Some("ALFKI"), Some("BERGS"), Some("  BLONP "), Some(""), Some("CHOPS"), Some("NULLC"), Some("BERGS")],
            "employee_id" => [Some(1i16), Some(2), Some(3), None, Some(5), Some(6), Some(7), Some(8), Some(9), Some(4)],
            "order_date" => [date(1997, 1, 10), date(1997, 1, 11), date(1997, 1, 12), None, date(1997, 2, 1), date(1997, 2, 2), date(1997, 2, 3), date(1997, 2, 4), date(1997, 2, 5), date(1999, 9, 9)],
            "required_date" => [date(1997, 2, 7), None, None, None, None, None, None, None, None, None],
            "shipped_date" => [date(1997, 1, 15), None, None, None, date(1997, 2, 9), None, None, None, None, None],
        )
        .unwrap();
        let products = df!(
            "product_id" => [10i16, 11, 12, 13, 14],
            "product_name" => [" Chai ", "Chang", "Tofu", "Ikura", "Konbu"],
            "category_id" => [Some(1i16), None, Some(99), Some(8), Some(8)],
        )
        .unwrap();
        let categories = df!(
            "category_id" => [1i16, 8],
            "category_name" => ["Beverages", "Seafood"],
            "description" => ["drinks", "fish"],
        )
        .unwrap();
        let customers = df!(
            "customer_id" => ["ALFKI", "BERGS", "BLONP", "CHOPS", "NULLC"],
            "company_name" => [Some("Alfreds"), Some("Berglunds"), Some("Blondel"), Some("Chop-suey"), None],
            "city" => [Some("Berlin"), Some("Luleå"), Some("Strasbourg"), Some("Bern"), None],
            "country" => [Some("Deutschland"), Some(" sweden "), Some("Royaume-Uni"), Some("Suisse"), None],
        )
        .unwrap();
        SalesInputs {
            order_details: order_details.lazy(),
            orders: orders.lazy(),
            products: products.lazy(),
            categories: categories.lazy(),
            customers: customers.lazy(),
        }
    }

    fn reasons(rejected: &DataFrame) -> Vec<&str> {
        let column = rejected.column(REJECT_REASON).unwrap().str().unwrap();
        column.iter().map(|reason| reason.unwrap()).collect()
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
    }

    #[test]
    fn every_line_is_classified_once() {
        let inputs = inputs();
        let details = inputs.order_details.clone();
        let classified = classify(inputs).unwrap().collect().unwrap();
        let sales = sales_master(classified.clone().lazy(), at())
            .collect()
            .unwrap();
        let rejected = rejects(details, classified.lazy(), at()).collect().unwrap();
        assert_eq!(sales.height() + rejected.height(), 19);
        // Worked out by hand from the inputs, line by line (0-based): the
        // sales are lines 0, 10, 11, 12, 16 and 17; every other line is
        // rejected by the first rule it breaks. Line 9 repeats line 0's key;
        // line 16 repeats line 15's, but 15 was rejected, so 16 is a sale.
        assert_eq!(
            reasons(&rejected),
            vec![
                "orphan_order",       // 1: order 99
                "orphan_product",     // 2: product 77
                "unknown_customer",   // 3: ZZZZZ
                "unknown_customer",   // 4: no customer
                "missing_order_date", // 5: order 4
                "invalid_quantity",   // 6: 0
                "invalid_unit_price", // 7: -1
                "invalid_discount",   // 8: 1.5
                "duplicate_line",     // 9: (1, 10) again
                "invalid_unit_price", // 13: null
                "unknown_customer",   // 14: empty customer id
                "invalid_quantity",   // 15: 0
                "orphan_order",       // 18: null order id
            ]
        );
        let ints = |name: &str| -> Vec<i64> {
            let column = sales.column(name).unwrap().i64().unwrap();
            column.into_no_null_iter().collect()
        };
        assert_eq!(ints("order_id"), vec![1, 5, 5, 6, 8, 9]);
        assert_eq!(ints("product_id"), vec![10, 11, 12, 13, 10, 13]);
        let totals: Vec<f64> = sales
            .column("line_total")
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        // 10*2, 4*1 (null discount), 2.5*4*0.75, 3*2, 5*2, 2*5*0.95 (the
        // discount is an f32 0.05 widened, hence the tolerance).
        for (total, expected) in totals.iter().zip([20.0, 4.0, 7.5, 6.0, 10.0, 9.5]) {
            assert!((total - expected).abs() < 1e-6, "{totals:?}");
        }
        let texts = |name: &str| -> Vec<Option<String>> {
            let column = sales.column(name).unwrap().str().unwrap();
            column.iter().map(|v| v.map(str::to_string)).collect()
        };
        assert_eq!(
            texts("category_name"),
            [
                "Beverages",
                "Uncategorized",
                "Uncategorized",
                "Seafood",
                "Beverages",
                "Seafood"
            ]
            .map(|s| Some(s.to_string()))
            .to_vec()
        );
        assert_eq!(
            texts("country"),
            [
                "Germany",
                "Sweden",
                "Sweden",
                "United Kingdom",
                "Switzerland",
                "Unknown"
            ]
            .map(|s| Some(s.to_string()))
            .to_vec()
        );
        insta::assert_snapshot!("sales_master", render(&sales));
        insta::assert_snapshot!("rejects", render(&rejected));
    }

    #[test]
    fn output_types_follow_the_contract() {
        let classified = classify(inputs()).unwrap();
        let schema = sales_master(classified, at()).collect_schema().unwrap();
        let types: Vec<String> = schema
            .iter()
            .map(|(name, dtype)| format!("{name}: {}", lake_table::schema::dtype_name(dtype)))
            .collect();
        insta::assert_snapshot!(types.join("\n"));
    }

    #[test]
    fn text_ids_are_trimmed_and_cast() {
        // A source keeping ids as text, padded, must join like integers.
        let mut inputs = inputs();
        inputs.order_details = df!(
            "order_id" => [" 1", "x"],
            "product_id" => ["10 ", "10"],
            "unit_price" => [1.0f64, 1.0],
            "quantity" => [1i64, 1],
            "discount" => [0.0f64, 0.0],
        )
        .unwrap()
        .lazy();
        let details = inputs.order_details.clone();
        let classified = classify(inputs).unwrap();
        let sales = sales_master(classified.clone(), at()).collect().unwrap();
        let ids = |name: &str| sales.column(name).unwrap().i64().unwrap().get(0);
        assert_eq!(
            (sales.height(), ids("order_id"), ids("product_id")),
            (1, Some(1), Some(10))
        );
        let rejected = rejects(details, classified, at()).collect().unwrap();
        assert_eq!(reasons(&rejected), vec!["orphan_order"]);
        assert_eq!(
            rejected.column("order_id").unwrap().str().unwrap().get(0),
            Some("x")
        );
    }

    /// Order lines of order 1 (customer ALFKI) whose read order and
    /// `_source_row` order differ, as when an engine reads bronze's files
    /// in another order than they were written. In read order:
    ///   0: (1, 10) price 1.0, `_source_row` 2
    ///   1: (1, 10) price 2.0, `_source_row` 0
    ///   2: (1, 10) price 3.0, `_source_row` 1
    ///   3: (1, 11) price 5.0, `_source_row` 5
    ///   4: (1, 11) price 4.0, quantity 0, `_source_row` 4
    fn shuffled_lines(source_row: Option<Series>) -> SalesInputs {
        let mut details = df!(
            "order_id" => [1i16, 1, 1, 1, 1],
            "product_id" => [10i16, 10, 10, 11, 11],
            "unit_price" => [1.0f32, 2.0, 3.0, 5.0, 4.0],
            "quantity" => [1i16, 1, 1, 1, 0],
            "discount" => [0.0f32, 0.0, 0.0, 0.0, 0.0],
        )
        .unwrap();
        if let Some(rows) = source_row {
            details.with_column(rows.into_column()).unwrap();
        }
        SalesInputs {
            order_details: details.lazy(),
            ..inputs()
        }
    }

    /// The sales' and the rejects' frames of `inputs`.
    fn split(inputs: SalesInputs) -> (DataFrame, DataFrame) {
        let details = inputs.order_details.clone();
        let classified = classify(inputs).unwrap().collect().unwrap();
        let sales = sales_master(classified.clone().lazy(), at())
            .collect()
            .unwrap();
        let rejected = rejects(details, classified.lazy(), at()).collect().unwrap();
        (sales, rejected)
    }

    fn prices(df: &DataFrame) -> Vec<f64> {
        let column = df.column("unit_price").unwrap().cast(&DataType::Float64);
        column.unwrap().f64().unwrap().into_no_null_iter().collect()
    }

    #[test]
    fn the_lowest_source_row_wins_a_duplicate_whatever_the_read_order() {
        assert_eq!(SOURCE_ROW, lake_bronze::metadata::SOURCE_ROW);
        let rows = Series::new(SOURCE_ROW.into(), [2i64, 0, 1, 5, 4]);
        let (sales, rejected) = split(shuffled_lines(Some(rows)));
        // (1, 10): `_source_row` 0 (price 2.0) was read first from the
        // source, so it is the sale, although read second here; prices
        // 1.0 (`_source_row` 2) and 3.0 (1) repeat it. (1, 11): the line
        // of `_source_row` 4 has quantity 0, so it does not count, and the
        // one of 5 (price 5.0) is a sale. Both outputs keep read order.
        assert_eq!(prices(&sales), vec![2.0, 5.0]);
        assert_eq!(prices(&rejected), vec![1.0, 3.0, 4.0]);
        assert_eq!(
            reasons(&rejected),
            vec!["duplicate_line", "duplicate_line", "invalid_quantity"]
        );
        // Rejects carry every order_details column, `_source_row` too.
        let rejected_rows: Vec<i64> = rejected
            .column(SOURCE_ROW)
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(rejected_rows, vec![2, 1, 4]);
        insta::assert_snapshot!("duplicates_by_source_row_sales", render(&sales));
        insta::assert_snapshot!("duplicates_by_source_row_rejects", render(&rejected));
    }

    #[test]
    fn without_source_row_the_read_order_decides() {
        // Bronze written before `_source_row` existed: the first line read
        // (price 1.0) is the sale, 2.0 and 3.0 repeat it.
        let (sales, rejected) = split(shuffled_lines(None));
        assert_eq!(prices(&sales), vec![1.0, 5.0]);
        assert_eq!(prices(&rejected), vec![2.0, 3.0, 4.0]);
        assert_eq!(
            reasons(&rejected),
            vec!["duplicate_line", "duplicate_line", "invalid_quantity"]
        );
        assert!(!rejected.schema().contains(SOURCE_ROW));
        insta::assert_snapshot!("duplicates_without_source_row_sales", render(&sales));
        insta::assert_snapshot!("duplicates_without_source_row_rejects", render(&rejected));
    }

    #[test]
    fn a_date_with_null_source_rows_keeps_the_read_order() {
        // An older date read through a table that gained `_source_row`
        // later: the column is there, null on every line. Read order
        // decides, as without the column.
        let rows = Series::new(SOURCE_ROW.into(), [None::<i64>, None, None, None, None]);
        let (sales, rejected) = split(shuffled_lines(Some(rows)));
        assert_eq!(prices(&sales), vec![1.0, 5.0]);
        assert_eq!(prices(&rejected), vec![2.0, 3.0, 4.0]);
        assert_eq!(
            reasons(&rejected),
            vec!["duplicate_line", "duplicate_line", "invalid_quantity"]
        );
    }
}
