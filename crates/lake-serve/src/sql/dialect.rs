//! The dialect of the first parse: Polars SQL's own (`GenericDialect`)
//! plus Delta's time travel after a table name (`VERSION AS OF 3`,
//! `TIMESTAMP AS OF '...'`), which `GenericDialect` does not parse (in
//! sqlparser 0.62 only the dialects that say `supports_table_versioning`
//! do, Databricks' among them).
//!
//! Only the client's text is parsed with it: the check resolves each time
//! travel clause to a table of its own and removes the clause, and the
//! text Polars runs is parsed again with `GenericDialect` alone. Every
//! method `GenericDialect` defines is forwarded to it, and `dialect()`
//! answers `GenericDialect`'s type, so the parser's own tests of the
//! dialect (`dialect_of!`) see it too; the other methods are the trait's
//! defaults, as for `GenericDialect`. A test parses a corpus of queries
//! with both and compares the trees.

use std::any::TypeId;

use sqlparser::dialect::{Dialect, GenericDialect};

/// `GenericDialect` with Delta's time travel clauses.
#[derive(Debug, Default, Clone, Copy)]
pub struct TimeTravelDialect;

macro_rules! forward {
    ($($name:ident),* $(,)?) => {
        $(
            fn $name(&self) -> bool {
                GenericDialect.$name()
            }
        )*
    };
}

impl Dialect for TimeTravelDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<GenericDialect>()
    }

    fn supports_table_versioning(&self) -> bool {
        true
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        GenericDialect.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        GenericDialect.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        GenericDialect.is_identifier_part(ch)
    }

    // Every other method `GenericDialect` defines (sqlparser 0.62.0's
    // src/dialect/generic.rs, in its order).
    forward!(
        supports_unicode_string_literal,
        supports_partition_by_after_order_by,
        supports_array_join_syntax,
        supports_group_by_expr,
        supports_group_by_with_modifier,
        supports_left_associative_joins_without_parens,
        supports_connect_by,
        supports_match_recognize,
        supports_pipe_operator,
        supports_start_transaction_modifier,
        supports_window_function_null_treatment_arg,
        supports_dictionary_syntax,
        supports_window_clause_named_window_reference,
        supports_parenthesized_set_variables,
        supports_select_wildcard_except,
        support_map_literal_syntax,
        allow_extract_custom,
        allow_extract_single_quotes,
        supports_extract_comma_syntax,
        supports_create_view_comment_syntax,
        supports_parens_around_table_factor,
        supports_values_as_table_factor,
        supports_create_index_with_clause,
        supports_explain_with_utility_options,
        supports_limit_comma,
        supports_update_order_by,
        supports_from_first_select,
        supports_projection_trailing_commas,
        supports_asc_desc_in_column_definition,
        supports_try_convert,
        supports_bitwise_shift_operators,
        supports_comment_on,
        supports_load_extension,
        supports_named_fn_args_with_assignment_operator,
        supports_struct_literal,
        supports_empty_projections,
        supports_nested_comments,
        supports_multiline_comment_hints,
        supports_user_host_grantee,
        supports_string_escape_constant,
        supports_array_typedef_with_brackets,
        supports_match_against,
        supports_set_names,
        supports_comma_separated_set_assignments,
        supports_filter_during_aggregation,
        supports_select_wildcard_exclude,
        supports_data_type_signed_suffix,
        supports_interval_options,
        supports_quote_delimited_string,
        supports_select_wildcard_replace,
        supports_select_wildcard_ilike,
        supports_select_wildcard_rename,
        supports_optimize_table,
        supports_install,
        supports_detach,
        supports_prewhere,
        supports_with_fill,
        supports_limit_by,
        supports_interpolate,
        supports_settings,
        supports_select_format,
        supports_comment_optimizer_hint,
        supports_constraint_keyword_without_name,
        supports_key_column_option,
        supports_comma_separated_trim,
        supports_cte_without_as,
        supports_select_item_multi_column_alias,
        supports_xml_expressions,
    );
}
