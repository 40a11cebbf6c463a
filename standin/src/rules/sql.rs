//! A parser for the subset of the sync rules' SQL the stand-in implements.
//!
//! Parameter queries: `SELECT <value> [AS <name>], ...` where a value is a request value
//! (`request.user_id()`, `request.jwt() ->> '<path>'`, `request.parameters() ->> '<path>'`,
//! `token_parameters.<name>`, `user_parameters.<name>`), and in a table-backed query
//! (`FROM [<schema>.]<table> WHERE <column> = <request value> [AND ...]`, no alias) also a
//! column of the table.
//!
//! Data queries: `SELECT * | <column> [AS <name>], ... FROM [<schema>.]<table> [AS <alias>]
//! [WHERE <column> = bucket.<parameter> [AND ...]]` (either side of `=`).
//!
//! Unquoted identifiers fold to lower case, as in PostgreSQL; double-quoted ones keep their
//! case. Everything else is an error naming the construct.

use super::SourceTable;

/// One token of the supported SQL.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    /// An identifier or keyword; `quoted` for a double-quoted identifier.
    Ident { text: String, quoted: bool },
    /// A single-quoted string literal.
    Str(String),
    /// A numeric literal (only ever rejected: named in messages).
    Number(String),
    /// Punctuation or an operator: `* . , ( ) = ->> ->` and anything else of one character.
    Sym(&'static str),
}

pub(super) fn tokenize(sql: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = sql.trim().trim_end_matches(';').chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '\'' {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next() {
                    Some(q) if q == c && chars.peek() == Some(&c) => {
                        chars.next();
                        text.push(c);
                    }
                    Some(q) if q == c => break,
                    Some(ch) => text.push(ch),
                    None => return Err("unterminated quote".to_owned()),
                }
            }
            out.push(if c == '"' {
                Token::Ident { text, quoted: true }
            } else {
                Token::Str(text)
            });
        } else if c.is_ascii_digit() {
            let mut text = String::new();
            while let Some(&ch) = chars
                .peek()
                .filter(|ch| ch.is_ascii_alphanumeric() || **ch == '.')
            {
                text.push(ch);
                chars.next();
            }
            out.push(Token::Number(text));
        } else if c.is_alphanumeric() || c == '_' {
            let mut text = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_alphanumeric() || ch == '_' || ch == '$' {
                    text.push(ch);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(Token::Ident {
                text,
                quoted: false,
            });
        } else {
            chars.next();
            let sym = match c {
                '*' => "*",
                '.' => ".",
                ',' => ",",
                '(' => "(",
                ')' => ")",
                '=' => "=",
                '-' if chars.peek() == Some(&'>') => {
                    chars.next();
                    if chars.peek() == Some(&'>') {
                        chars.next();
                        "->>"
                    } else {
                        "->"
                    }
                }
                other => return Err(format!("`{other}` is not supported")),
            };
            out.push(Token::Sym(sym));
        }
    }
    Ok(out)
}

/// A cursor over the tokens of one query.
pub(super) struct Parser {
    toks: Vec<Token>,
    pos: usize,
}

impl Parser {
    pub(super) fn new(sql: &str) -> Result<Self, String> {
        Ok(Parser {
            toks: tokenize(sql)?,
            pos: 0,
        })
    }

    pub(super) fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    pub(super) fn describe(&self) -> String {
        match self.peek() {
            None => "the end of the query".to_owned(),
            Some(Token::Ident { text, quoted: true }) => format!("`\"{text}\"`"),
            Some(Token::Ident { text, .. }) => format!("`{text}`"),
            Some(Token::Str(s)) => format!("`'{s}'`"),
            Some(Token::Number(n)) => format!("`{n}`"),
            Some(Token::Sym(s)) => format!("`{s}`"),
        }
    }

    pub(super) fn unexpected<T>(&self, wanted: &str) -> Result<T, String> {
        Err(format!("expected {wanted}, found {}", self.describe()))
    }

    /// Consumes the unquoted keyword `kw` (case-insensitive) if it is next.
    pub(super) fn keyword(&mut self, kw: &str) -> bool {
        match self.peek() {
            Some(Token::Ident {
                text,
                quoted: false,
            }) if text.eq_ignore_ascii_case(kw) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    pub(super) fn expect_keyword(&mut self, kw: &str) -> Result<(), String> {
        if self.keyword(kw) {
            Ok(())
        } else {
            self.unexpected(&format!("`{}`", kw.to_ascii_uppercase()))
        }
    }

    pub(super) fn sym(&mut self, sym: &'static str) -> bool {
        if self.peek() == Some(&Token::Sym(sym)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn expect_sym(&mut self, sym: &'static str) -> Result<(), String> {
        if self.sym(sym) {
            Ok(())
        } else {
            self.unexpected(&format!("`{sym}`"))
        }
    }

    /// An identifier, folded to lower case unless quoted. Keywords that end a clause are not
    /// identifiers here.
    pub(super) fn ident(&mut self) -> Option<String> {
        match self.peek() {
            Some(Token::Ident { text, quoted: true }) => {
                let text = text.clone();
                self.pos += 1;
                Some(text)
            }
            Some(Token::Ident {
                text,
                quoted: false,
            }) if !RESERVED.iter().any(|k| text.eq_ignore_ascii_case(k)) => {
                let text = text.to_lowercase();
                self.pos += 1;
                Some(text)
            }
            _ => None,
        }
    }

    pub(super) fn expect_ident(&mut self, what: &str) -> Result<String, String> {
        match self.ident() {
            Some(ident) => Ok(ident),
            None => self.unexpected(what),
        }
    }

    pub(super) fn string(&mut self) -> Option<String> {
        match self.peek() {
            Some(Token::Str(s)) => {
                let s = s.clone();
                self.pos += 1;
                Some(s)
            }
            _ => None,
        }
    }

    pub(super) fn end(&self, wanted: &str) -> Result<(), String> {
        if self.pos == self.toks.len() {
            Ok(())
        } else {
            self.unexpected(wanted)
        }
    }
}

/// Keywords that cannot be unquoted identifiers in the supported subset.
const RESERVED: [&str; 11] = [
    "select", "from", "where", "and", "or", "as", "not", "in", "is", "null", "on",
];

/// A value of the request a parameter query selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestValue {
    /// `request.user_id()` (and `token_parameters.user_id`): the token's `sub`.
    UserId,
    /// `request.jwt() ->> '<path>'`: a value of the token payload.
    Jwt(String),
    /// `request.parameters() ->> '<path>'`: a value of the client's parameters.
    Parameters(String),
    /// `token_parameters.<name>`: a value of the token's `parameters` claim.
    TokenParameter(String),
    /// `user_parameters.<name>`: a client parameter.
    UserParameter(String),
    /// `auth.parameter('<key>')` (streams): a value of the token payload, the key split only
    /// when it starts with `$`.
    AuthParameter(String),
    /// `connection.parameter('<key>')` (streams): a client parameter, split like
    /// [`RequestValue::AuthParameter`].
    ConnectionParameter(String),
    /// `subscription.parameter('<key>')` (streams): a parameter of the stream subscription.
    SubscriptionParameter(String),
    /// `subscription.parameters() ->> '<path>'` (streams).
    SubscriptionParameters(String),
}

/// One selected value of a parameter query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterValue {
    /// A value of the request.
    Request(RequestValue),
    /// A column of the parameter query's table (table-backed queries only).
    Column(String),
}

/// A parsed parameter query: request-only (no `table`) or table-backed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterQuery {
    /// The selected values, named by their alias (or column name), in select order (the
    /// order of the values in the bucket names it produces).
    pub outputs: Vec<(String, ParameterValue)>,
    /// The table of a table-backed query (`FROM`).
    pub table: Option<SourceTable>,
    /// A table-backed query's `WHERE <column> = <request value>` conditions (joined by AND).
    pub lookups: Vec<(String, RequestValue)>,
}

/// Parses a parameter query; everything outside the subset is an error naming it.
pub fn parse_parameter_query(sql: &str) -> Result<ParameterQuery, String> {
    let mut p = Parser::new(sql)?;
    p.expect_keyword("select")?;
    let mut outputs: Vec<(String, ParameterValue)> = Vec::new();
    let mut qualifiers = Vec::new();
    loop {
        let (value, qualifier, default_name) = parameter_value(&mut p)?;
        qualifiers.extend(qualifier);
        let name = if p.keyword("as") {
            p.expect_ident("an output name after AS")?
        } else {
            default_name.ok_or("a request function needs an alias (`... AS <name>`)")?
        };
        if outputs.iter().any(|(n, _)| *n == name) {
            return Err(format!("bucket parameter `{name}` selected twice"));
        }
        outputs.push((name, value));
        if !p.sym(",") {
            break;
        }
    }
    if outputs.iter().any(|(n, _)| n == "_priority") {
        return Err("`_priority` in parameter queries is not supported".to_owned());
    }
    if !p.keyword("from") {
        if p.keyword("where") {
            return Err("`WHERE` in request-only parameter queries is not supported".to_owned());
        }
        p.end("`,`, `AS`, `FROM` or the end of the parameter query")?;
        if let Some((name, _)) = outputs
            .iter()
            .find(|(_, v)| matches!(v, ParameterValue::Column(_)))
        {
            return Err(format!(
                "`{name}`: a column in a parameter query without `FROM`"
            ));
        }
        return Ok(ParameterQuery {
            outputs,
            table: None,
            lookups: Vec::new(),
        });
    }
    let first = p.expect_ident("a table name")?;
    let (schema, name) = if p.sym(".") {
        (first, p.expect_ident("a table name after the schema")?)
    } else {
        ("public".to_owned(), first)
    };
    if p.keyword("as") || p.ident().is_some() {
        return Err("table aliases are not supported in parameter queries".to_owned());
    }
    if !p.keyword("where") {
        return p.unexpected("`WHERE` (a table-backed parameter query needs `<column> = <request value>` conditions)");
    }
    let mut lookups = Vec::new();
    loop {
        let (left, lq, _) = parameter_value(&mut p)?;
        if p.keyword("in") {
            return Err("`IN` in parameter queries is not supported".to_owned());
        }
        if !p.sym("=") {
            return p
                .unexpected("`=` (only `<column> = <request value>` conditions are supported)");
        }
        let (right, rq, _) = parameter_value(&mut p)?;
        qualifiers.extend(lq.into_iter().chain(rq));
        match (left, right) {
            (ParameterValue::Column(c), ParameterValue::Request(r))
            | (ParameterValue::Request(r), ParameterValue::Column(c)) => {
                if lookups.iter().any(|(_, v)| *v == r) {
                    return Err(
                        "the same request value in two conditions is not supported".to_owned()
                    );
                }
                lookups.push((c, r))
            }
            _ => {
                return Err(
                    "only `<column> = <request value>` conditions are supported in \
                     table-backed parameter queries"
                        .to_owned(),
                );
            }
        }
        if !p.keyword("and") {
            break;
        }
    }
    end_of_where(&p, "parameter", "", &qualifiers, &name)?;
    Ok(ParameterQuery {
        outputs,
        table: Some(SourceTable { schema, name }),
        lookups,
    })
}

/// One value of a parameter query: `(value, table qualifier of a column, default name)`.
fn parameter_value(
    p: &mut Parser,
) -> Result<(ParameterValue, Option<String>, Option<String>), String> {
    let Some(first) = p.ident() else {
        return p.unexpected("a column, `request.user_id()`, `request.jwt() ->> '...'`, `request.parameters() ->> '...'`, `token_parameters.<name>` or `user_parameters.<name>`");
    };
    if p.peek() == Some(&Token::Sym("(")) {
        return Err(format!(
            "function `{first}(...)` is not supported in parameter queries"
        ));
    }
    if !p.sym(".") {
        return Ok((ParameterValue::Column(first.clone()), None, Some(first)));
    }
    let name = p.expect_ident("a name after `.`")?;
    let request = |v| Ok((ParameterValue::Request(v), None, Some(name.clone())));
    match first.as_str() {
        "token_parameters" if name == "user_id" => request(RequestValue::UserId),
        "token_parameters" => request(RequestValue::TokenParameter(name.clone())),
        "user_parameters" => request(RequestValue::UserParameter(name.clone())),
        "request" => {
            p.expect_sym("(")?;
            p.expect_sym(")")?;
            let value = match name.as_str() {
                "user_id" => {
                    return Ok((ParameterValue::Request(RequestValue::UserId), None, None));
                }
                "jwt" => RequestValue::Jwt,
                "parameters" => RequestValue::Parameters,
                other => return Err(format!("`request.{other}()` is not supported")),
            };
            if p.sym("->") {
                return Err("the `->` operator is not supported (use `->>`)".to_owned());
            }
            p.expect_sym("->>")?;
            let Some(path) = p.string() else {
                return p.unexpected("a string literal after `->>`");
            };
            Ok((ParameterValue::Request(value(path)), None, None))
        }
        _ => Ok((
            ParameterValue::Column(name.clone()),
            Some(first),
            Some(name),
        )),
    }
}

/// One output column of a data query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// `*`: every column of the row not starting with `_`, in row order.
    Star,
    /// `<source> [AS <output>]`.
    Named {
        /// The row's column.
        source: String,
        /// The output name.
        output: String,
    },
}

/// A parsed data query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedDataQuery {
    /// The source table.
    pub table: SourceTable,
    /// The output table name: the alias, or the table name.
    pub object_type: String,
    /// The output columns (either `[Star]` or named columns).
    pub columns: Vec<Column>,
    /// `WHERE` conditions `(row column, bucket parameter)`, all of which must hold.
    pub filters: Vec<(String, String)>,
}

/// Parses a data query.
pub fn parse_data_query(sql: &str) -> Result<ParsedDataQuery, String> {
    let mut p = Parser::new(sql)?;
    let mut select = parse_select_from(&mut p)?;
    let mut filters = Vec::new();
    if p.keyword("where") {
        loop {
            let filter = condition(&mut p)?;
            if let Some(q) = filter.0.clone() {
                select.qualifiers.push(q);
            }
            filters.push((filter.1, filter.2));
            if !p.keyword("and") {
                break;
            }
        }
    }
    end_of_where(
        &p,
        "data",
        " (only `<column> = bucket.<parameter>` conditions joined by AND are supported)",
        &select.qualifiers,
        &select.object_type,
    )?;
    check_output_columns(&select.columns)?;
    Ok(ParsedDataQuery {
        table: select.table,
        object_type: select.object_type,
        columns: select.columns,
        filters,
    })
}

/// `SELECT <columns> FROM <table> [AS <alias>]` of a data query, up to its `WHERE`.
pub(super) struct SelectFrom {
    /// The source table.
    pub table: SourceTable,
    /// The output table name: the alias, or the table name.
    pub object_type: String,
    /// The output columns.
    pub columns: Vec<Column>,
    /// The qualifiers of the column references seen so far, checked at the end.
    pub qualifiers: Vec<String>,
}

/// Parses `SELECT * | <column> [AS <name>], ... FROM [<schema>.]<table> [AS <alias>]`.
pub(super) fn parse_select_from(p: &mut Parser) -> Result<SelectFrom, String> {
    p.expect_keyword("select")?;
    let mut columns = Vec::new();
    // Qualified column references are checked against the table once it is known.
    let mut qualifiers: Vec<String> = Vec::new();
    loop {
        if p.sym("*") {
            columns.push(Column::Star);
        } else {
            let (qualifier, source) = column_ref(p)?;
            qualifiers.extend(qualifier);
            let output = if p.keyword("as") {
                p.expect_ident("an output name after AS")?
            } else {
                source.clone()
            };
            columns.push(Column::Named { source, output });
        }
        if !p.sym(",") {
            break;
        }
    }
    if !p.keyword("from") {
        return p.unexpected(
            "`,`, `AS` or `FROM` (only column references and `*` are supported in data queries)",
        );
    }
    let first = p.expect_ident("a table name")?;
    let (schema, name) = if p.sym(".") {
        (first, p.expect_ident("a table name after the schema")?)
    } else {
        ("public".to_owned(), first)
    };
    let object_type = if p.keyword("as") {
        p.expect_ident("a table alias after AS")?
    } else {
        name.clone()
    };
    Ok(SelectFrom {
        table: SourceTable { schema, name },
        object_type,
        columns,
        qualifiers,
    })
}

/// Checks a data query's output columns: `*` alone, or named columns with an `id`, each once.
pub(super) fn check_output_columns(columns: &[Column]) -> Result<(), String> {
    if columns.len() > 1 && columns.contains(&Column::Star) {
        return Err("`*` together with other columns is not supported".to_owned());
    }
    let mut outputs: Vec<&str> = Vec::new();
    for column in columns {
        if let Column::Named { output, .. } = column {
            if outputs.contains(&output.as_str()) {
                return Err(format!("output column `{output}` selected twice"));
            }
            outputs.push(output);
        }
    }
    if columns != [Column::Star] && !outputs.contains(&"id") {
        return Err("the query must return an `id` column".to_owned());
    }
    Ok(())
}

/// Checks that a `kind` query ends after its `WHERE` conditions and that every column
/// qualifier names its `table`.
pub(super) fn end_of_where(
    p: &Parser,
    kind: &str,
    hint: &str,
    qualifiers: &[String],
    table: &str,
) -> Result<(), String> {
    if matches!(p.peek(), Some(Token::Ident { text, quoted: false }) if text.eq_ignore_ascii_case("or"))
    {
        return Err(format!("`OR` in {kind} queries is not supported"));
    }
    p.end(&format!("`AND` or the end of the {kind} query{hint}"))?;
    if let Some(q) = qualifiers.iter().find(|q| *q != table) {
        return Err(format!("`{q}` is not the query's table (`{table}`)"));
    }
    Ok(())
}

/// `[<table>.]<column>`: `(qualifier, column)`.
pub(super) fn column_ref(p: &mut Parser) -> Result<(Option<String>, String), String> {
    let Some(first) = p.ident() else {
        return p.unexpected(
            "a column name (expressions, functions and literals are not supported in data queries)",
        );
    };
    if p.sym(".") {
        Ok((Some(first), p.expect_ident("a column name after `.`")?))
    } else if p.peek() == Some(&Token::Sym("(")) {
        Err(format!(
            "function `{first}(...)` is not supported in data queries"
        ))
    } else {
        Ok((None, first))
    }
}

/// `<column> = bucket.<parameter>` or the reverse: `(qualifier, column, parameter)`.
fn condition(p: &mut Parser) -> Result<(Option<String>, String, String), String> {
    const SHAPE: &str = "a `<column> = bucket.<parameter>` condition";
    if p.keyword("not") {
        return Err("`NOT` in data queries is not supported".to_owned());
    }
    let left = column_ref(p).map_err(|_| format!("expected {SHAPE}"))?;
    if p.keyword("in") {
        return Err("`IN` in data queries is not supported".to_owned());
    }
    if !p.sym("=") {
        return p.unexpected(&format!("`=` ({SHAPE})"));
    }
    let right = column_ref(p).map_err(|_| format!("expected {SHAPE}"))?;
    match (left, right) {
        ((Some(b), param), (q, column)) | ((q, column), (Some(b), param)) if b == "bucket" => {
            if q.as_deref() == Some("bucket") {
                return Err("`bucket.<a> = bucket.<b>` is not supported".to_owned());
            }
            Ok((q, column, param))
        }
        _ => Err(format!(
            "only {SHAPE} is supported in data queries (comparing two columns is not)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_queries() {
        let request = |v| ParameterValue::Request(v);
        let q = parse_parameter_query(
            "SELECT request.user_id() AS user_id, request.jwt() ->> 'org' AS org, \
             token_parameters.team, user_parameters.device AS d",
        )
        .unwrap();
        assert_eq!(
            q.outputs,
            vec![
                ("user_id".to_owned(), request(RequestValue::UserId)),
                (
                    "org".to_owned(),
                    request(RequestValue::Jwt("org".to_owned()))
                ),
                (
                    "team".to_owned(),
                    request(RequestValue::TokenParameter("team".to_owned()))
                ),
                (
                    "d".to_owned(),
                    request(RequestValue::UserParameter("device".to_owned()))
                ),
            ]
        );
        assert_eq!(q.table, None);
        let q = parse_parameter_query(
            "SELECT id AS list_id, lists.org, request.user_id() AS u FROM lists \
             WHERE owner = request.user_id() AND request.jwt() ->> 'o' = lists.org",
        )
        .unwrap();
        assert_eq!(
            q.outputs,
            vec![
                (
                    "list_id".to_owned(),
                    ParameterValue::Column("id".to_owned())
                ),
                ("org".to_owned(), ParameterValue::Column("org".to_owned())),
                ("u".to_owned(), request(RequestValue::UserId)),
            ]
        );
        assert_eq!(q.table.unwrap().name, "lists");
        assert_eq!(
            q.lookups,
            vec![
                ("owner".to_owned(), RequestValue::UserId),
                ("org".to_owned(), RequestValue::Jwt("o".to_owned()))
            ]
        );
        for (sql, why) in [
            (
                "SELECT id AS x FROM lists l WHERE owner = request.user_id()",
                "aliases",
            ),
            ("SELECT id AS x FROM lists", "`WHERE`"),
            (
                "SELECT id AS x FROM lists WHERE owner = 'a'",
                "expected a column",
            ),
            (
                "SELECT id AS x FROM lists WHERE owner = other",
                "conditions",
            ),
            (
                "SELECT id AS x FROM lists WHERE owner IN request.user_id()",
                "IN",
            ),
            (
                "SELECT id AS x FROM lists WHERE a = request.user_id() AND b = token_parameters.user_id",
                "same request value",
            ),
            (
                "SELECT u.id AS x FROM lists WHERE owner = request.user_id()",
                "not the query's table",
            ),
            ("SELECT id AS x", "without `FROM`"),
            ("SELECT request.user_id()", "alias"),
            ("SELECT request.jwt() -> 'x' AS x", "->"),
            (
                "SELECT request.user_id() AS u WHERE request.jwt() ->> 'admin' = 1",
                "WHERE",
            ),
            (
                "SELECT request.user_id() AS u, request.jwt() ->> 'a' AS u",
                "twice",
            ),
            ("SELECT upper(request.user_id()) AS u", "function `upper"),
        ] {
            let err = parse_parameter_query(sql).unwrap_err();
            assert!(err.contains(why), "{sql}: {err}");
        }
    }

    #[test]
    fn data_queries() {
        let q = parse_data_query(
            "select l.id, Name as title from app.\"Lists\" AS l where l.owner_id = bucket.user_id \
             AND bucket.org = org_id",
        )
        .unwrap();
        assert_eq!(
            q.table,
            SourceTable {
                schema: "app".into(),
                name: "Lists".into()
            }
        );
        assert_eq!(q.object_type, "l");
        assert_eq!(
            q.columns,
            vec![
                Column::Named {
                    source: "id".into(),
                    output: "id".into()
                },
                Column::Named {
                    source: "name".into(),
                    output: "title".into()
                }
            ]
        );
        assert_eq!(
            q.filters,
            vec![
                ("owner_id".to_owned(), "user_id".to_owned()),
                ("org_id".to_owned(), "org".to_owned())
            ]
        );
        for (sql, why) in [
            ("SELECT name FROM t", "`id`"),
            ("SELECT id, upper(name) AS n FROM t", "function"),
            ("SELECT id, 1 AS n FROM t", "column"),
            ("SELECT * FROM t WHERE x = 1", "condition"),
            ("SELECT * FROM t WHERE a = b", "two columns"),
            ("SELECT * FROM t WHERE a = bucket.x OR b = bucket.y", "OR"),
            ("SELECT * FROM t WHERE a IN bucket.x", "IN"),
            ("SELECT *, name AS n FROM t", "together"),
            ("SELECT id, name AS id FROM t", "twice"),
            ("SELECT u.id FROM t", "not the query's table"),
            ("SELECT * FROM a, b", "end of the data query"),
            ("SELECT * FROM t WHERE a > bucket.x", ">"),
        ] {
            let err = parse_data_query(sql).unwrap_err();
            assert!(err.contains(why), "{sql}: {err}");
        }
    }
}
