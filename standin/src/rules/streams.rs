//! Sync Streams (`streams:`, edition 2): the parser of a stream's query, for the subset the
//! stand-in implements, and its translation into a [`BucketDefinition`].
//!
//! The service compiles an edition-2 stream (its "alpha" streams, `legacy/streams/` in
//! `@powersync/service-sync-rules`) into variants; a `WHERE` without `OR` is one variant,
//! `0`, whose buckets are named `<stream>|0[<parameter values>]`. Its bucket parameters are
//! the conditions in the order written:
//!
//! - `<column> = <request value>` (either side): the row's column, matched against the
//!   request value;
//! - `<column> IN (SELECT <column> FROM <table> WHERE <column> = <request value> [AND ...])`:
//!   the row's column, matched against the subquery's results, which are kept as a
//!   table-backed parameter query (`result` column) and so update as parameter rows change;
//! - `<column> IN <request value>` (optionally parenthesized): the row's column, matched
//!   against each element of the JSON array the request value holds.
//!
//! Request values: `auth.user_id()`, `auth.parameter('<key>')`, `auth.parameters() ->> '<path>'`
//! (the token payload), `subscription.parameter('<key>')`, `subscription.parameters() ->>
//! '<path>'` (the subscription's parameters) and `connection.parameter('<key>')`,
//! `connection.parameters() ->> '<path>'` (the client's request parameters).
//! Everything else (`OR`, `NOT`, literals, other functions, `<request value> IN ...`, `&&`,
//! row filters) is an error naming it.

use super::sql::{Column, ParameterQuery, ParameterValue, Parser, RequestValue, Token};
use super::sql::{check_output_columns, column_ref, end_of_where, parse_select_from};
use super::{BucketDefinition, DataQuery, SourceTable};

/// Where a stream's bucket parameter gets its value from for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamSource {
    /// A value of the request (`<column> = <request value>`).
    Request(RequestValue),
    /// The results of the definition's parameter query with this index (`<column> IN
    /// (SELECT ...)`).
    Subquery(usize),
    /// The elements of a request value holding a JSON array (`<column> IN
    /// subscription.parameter('ids')`).
    RequestArray(RequestValue),
}

/// One bucket parameter of a stream: the row's column and where a request's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamParameter {
    /// The column of the stream's table.
    pub column: String,
    /// Its request side.
    pub source: StreamSource,
}

/// What makes a definition a Sync Stream rather than a bucket definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDefinition {
    /// `auto_subscribe: true`: a default stream.
    pub auto_subscribe: bool,
    /// Its bucket parameters, in the order of the `WHERE` conditions.
    pub parameters: Vec<StreamParameter>,
}

/// The bucket name prefix of a stream's only variant (the service's `<stream>|<variant>`).
pub fn stream_prefix(name: &str) -> String {
    format!("{name}|0")
}

/// Builds the definition of stream `name` from its `query`.
pub fn parse_stream(
    name: &str,
    sql: &str,
    auto_subscribe: bool,
    priority: u8,
) -> Result<BucketDefinition, String> {
    let mut p = Parser::new(sql)?;
    let mut select = parse_select_from(&mut p)?;
    let mut parameters = Vec::new();
    let mut subqueries: Vec<ParameterQuery> = Vec::new();
    if p.keyword("where") {
        loop {
            if p.keyword("not") {
                return Err("`NOT` in stream queries is not supported".to_owned());
            }
            let left = operand(&mut p)?;
            if p.keyword("in") {
                let Operand::Column(qualifier, column) = left else {
                    return Err(
                        "`<request value> IN (...)` is not supported (only `<column> IN (SELECT ...)`)"
                            .to_owned(),
                    );
                };
                select.qualifiers.extend(qualifier);
                let parenthesized = p.sym("(");
                if parenthesized
                    && matches!(p.peek(), Some(Token::Ident { text, quoted: false }) if text.eq_ignore_ascii_case("select"))
                {
                    let subquery = parse_subquery(&mut p)?;
                    p.expect_sym(")")?;
                    parameters.push(StreamParameter {
                        column,
                        source: StreamSource::Subquery(subqueries.len()),
                    });
                    subqueries.push(subquery);
                } else {
                    let Operand::Request(value) = operand(&mut p)? else {
                        return Err(
                            "`IN` is only supported with a subquery or a request value holding \
                             a JSON array"
                                .to_owned(),
                        );
                    };
                    if parenthesized {
                        p.expect_sym(")")?;
                    }
                    parameters.push(StreamParameter {
                        column,
                        source: StreamSource::RequestArray(value),
                    });
                }
            } else {
                if !p.sym("=") {
                    return p.unexpected(
                        "`=` or `IN` (only `<column> = <request value>` and `<column> IN (SELECT ...)` \
                         conditions joined by AND are supported)",
                    );
                }
                let right = operand(&mut p)?;
                match (left, right) {
                    (Operand::Column(q, column), Operand::Request(value))
                    | (Operand::Request(value), Operand::Column(q, column)) => {
                        select.qualifiers.extend(q);
                        parameters.push(StreamParameter {
                            column,
                            source: StreamSource::Request(value),
                        });
                    }
                    (Operand::Column(..), Operand::Column(..)) => {
                        return Err("comparing two columns is not supported".to_owned());
                    }
                    (Operand::Request(_), Operand::Request(_)) => {
                        return Err(
                            "conditions on request values alone are not supported".to_owned()
                        );
                    }
                }
            }
            if !p.keyword("and") {
                break;
            }
        }
    }
    end_of_where(
        &p,
        "stream",
        " (only `<column> = <request value>` and `<column> IN (SELECT ...)` conditions joined \
         by AND are supported)",
        &select.qualifiers,
        &select.object_type,
    )?;
    check_output_columns(&select.columns)?;
    let parameter_names = (0..parameters.len()).map(|i| format!("p{i}")).collect();
    let prefix = stream_prefix(name);
    Ok(BucketDefinition {
        name: format!("{prefix}[]"),
        definition: name.to_owned(),
        priority,
        parameters: parameter_names,
        parameter_queries: subqueries,
        queries: vec![DataQuery {
            table: select.table,
            object_type: select.object_type,
            columns: select.columns,
            filters: Vec::new(),
        }],
        stream: Some(StreamDefinition {
            auto_subscribe,
            parameters,
        }),
    })
}

/// `SELECT <column> FROM [<schema>.]<table> [AS <alias>] WHERE <column> = <request value>
/// [AND ...]` inside `IN (...)`, as a table-backed parameter query selecting `result`.
fn parse_subquery(p: &mut Parser) -> Result<ParameterQuery, String> {
    let select = parse_select_from(p)?;
    let [Column::Named { source, .. }] = select.columns.as_slice() else {
        return Err("a stream subquery must select exactly one column".to_owned());
    };
    let mut qualifiers = select.qualifiers.clone();
    if !p.keyword("where") {
        return p.unexpected(
            "`WHERE` (a stream subquery needs `<column> = <request value>` conditions)",
        );
    }
    let mut lookups = Vec::new();
    loop {
        let left = operand(p)?;
        if !p.sym("=") {
            return p.unexpected(
                "`=` (only `<column> = <request value>` conditions are supported in subqueries)",
            );
        }
        let right = operand(p)?;
        match (left, right) {
            (Operand::Column(q, column), Operand::Request(value))
            | (Operand::Request(value), Operand::Column(q, column)) => {
                qualifiers.extend(q);
                lookups.push((column, value));
            }
            _ => {
                return Err(
                    "only `<column> = <request value>` conditions are supported in stream subqueries"
                        .to_owned(),
                );
            }
        }
        if !p.keyword("and") {
            break;
        }
    }
    if matches!(p.peek(), Some(Token::Ident { text, quoted: false }) if text.eq_ignore_ascii_case("or"))
    {
        return Err("`OR` in stream subqueries is not supported".to_owned());
    }
    if p.peek() != Some(&Token::Sym(")")) {
        return p.unexpected("`AND` or `)` after the subquery's conditions");
    }
    if let Some(q) = qualifiers.iter().find(|q| **q != select.object_type) {
        return Err(format!(
            "`{q}` is not the subquery's table (`{}`)",
            select.object_type
        ));
    }
    Ok(ParameterQuery {
        outputs: vec![("result".to_owned(), ParameterValue::Column(source.clone()))],
        table: Some(SourceTable {
            schema: select.table.schema,
            name: select.table.name,
        }),
        lookups,
    })
}

/// One side of a stream condition.
enum Operand {
    /// `[<qualifier>.]<column>`.
    Column(Option<String>, String),
    /// A request value.
    Request(RequestValue),
}

/// A column or one of the stream request functions.
fn operand(p: &mut Parser) -> Result<Operand, String> {
    const SHAPE: &str = "a column, `auth.user_id()`, `auth.parameter('...')`, \
        `auth.parameters() ->> '...'`, `subscription.parameter('...')`, \
        `subscription.parameters() ->> '...'`, `connection.parameter('...')` or \
        `connection.parameters() ->> '...'`";
    let start = p.describe();
    let (qualifier, name) =
        column_ref(p).map_err(|_| format!("expected {SHAPE}, found {start}"))?;
    if p.peek() != Some(&Token::Sym("(")) {
        return Ok(Operand::Column(qualifier, name));
    }
    let Some(schema) = qualifier else {
        return Err(format!(
            "function `{name}(...)` is not supported in stream queries"
        ));
    };
    p.expect_sym("(")?;
    let argument = p.string();
    p.expect_sym(")")?;
    let value = match (schema.as_str(), name.as_str(), argument) {
        ("auth", "user_id", None) => RequestValue::UserId,
        ("auth", "parameter", Some(key)) => RequestValue::AuthParameter(key),
        ("subscription", "parameter", Some(key)) => RequestValue::SubscriptionParameter(key),
        ("connection", "parameter", Some(key)) => RequestValue::ConnectionParameter(key),
        (schema @ ("auth" | "subscription" | "connection"), "parameters", None) => {
            if p.sym("->") {
                return Err("the `->` operator is not supported (use `->>`)".to_owned());
            }
            if !p.sym("->>") {
                return p.unexpected(&format!("`->>` after `{schema}.parameters()`"));
            }
            let Some(path) = p.string() else {
                return p.unexpected("a string literal after `->>`");
            };
            match schema {
                "auth" => RequestValue::Jwt(path),
                "connection" => RequestValue::Parameters(path),
                _ => RequestValue::SubscriptionParameters(path),
            }
        }
        (schema, name, _) => {
            return Err(format!(
                "`{schema}.{name}(...)` is not supported in stream queries (expected {SHAPE})"
            ));
        }
    };
    Ok(Operand::Request(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_queries() {
        let def = parse_stream(
            "s",
            "SELECT t.id, name AS title FROM todos AS t WHERE t.list_id IN \
             (SELECT id FROM lists WHERE owner = auth.user_id()) AND subscription.parameter('p') = t.kind",
            true,
            1,
        )
        .unwrap();
        assert_eq!(def.name, "s|0[]");
        assert_eq!(def.queries[0].object_type, "t");
        let stream = def.stream.unwrap();
        assert_eq!(
            stream.parameters,
            vec![
                StreamParameter {
                    column: "list_id".into(),
                    source: StreamSource::Subquery(0)
                },
                StreamParameter {
                    column: "kind".into(),
                    source: StreamSource::Request(RequestValue::SubscriptionParameter("p".into()))
                },
            ]
        );
        assert_eq!(
            def.parameter_queries[0].lookups,
            vec![("owner".to_owned(), RequestValue::UserId)]
        );
        for (sql, why) in [
            ("SELECT * FROM t WHERE a = 1", "expected a column"),
            ("SELECT * FROM t WHERE a = b", "two columns"),
            (
                "SELECT * FROM t WHERE a = auth.user_id() OR b = auth.user_id()",
                "OR",
            ),
            ("SELECT * FROM t WHERE NOT a = auth.user_id()", "NOT"),
            (
                "SELECT * FROM t WHERE a = request.user_id()",
                "request.user_id",
            ),
            (
                "SELECT * FROM t WHERE auth.user_id() IN (SELECT id FROM u WHERE x = auth.user_id())",
                "IN",
            ),
            (
                "SELECT * FROM t WHERE a IN (SELECT id, x FROM u WHERE x = auth.user_id())",
                "exactly one",
            ),
            ("SELECT * FROM t WHERE a IN (SELECT id FROM u)", "WHERE"),
            ("SELECT * FROM t WHERE a IN (b)", "JSON array"),
            ("SELECT * FROM t WHERE a IN (auth.user_id(), b)", "`)`"),
            ("SELECT * FROM t WHERE a = auth.parameters() -> 'x'", "->"),
            ("SELECT * FROM t WHERE a = upper(auth.user_id())", "upper"),
            ("SELECT name FROM t", "`id`"),
        ] {
            let err = parse_stream("s", sql, false, 3).unwrap_err();
            assert!(err.contains(why), "{sql}: {err}");
        }
    }
}
