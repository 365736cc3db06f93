//! Guards on the crate's shape, which a restructure alone does not keep: the root's public names
//! and the length of the source files.

/// The crate root is what a user writes in the first hour; everything else belongs in a
/// module by concept. Counted from lib.rs's text, every feature's names included.
#[test]
fn the_root_stays_small() {
    const MOST: usize = 25;
    let names = public_names(include_str!("lib.rs"));
    for expected in [
        "Breaker",
        "Guarded",
        "sender_fn",
        "config",
        "status",
        "guide",
        "fleet",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} not found in {names:?}"
        );
    }
    assert!(
        names.len() <= MOST,
        "the crate root has {} public names, at most {MOST} are allowed: {names:?}",
        names.len()
    );
    let exporting: Vec<String> = files("src")
        .into_iter()
        .filter(|(_, text)| {
            text.lines()
                .any(|line| line.trim_start().starts_with("#[macro_export"))
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        exporting.is_empty(),
        "a #[macro_export] macro lands in the root: {exporting:?}"
    );
}

/// No file in src/ outgrows 600 lines: a file that does holds two concepts.
#[test]
fn no_source_file_is_over_600_lines() {
    let long: Vec<(String, usize)> = files("src")
        .into_iter()
        .map(|(path, text)| (path, text.lines().count()))
        .filter(|(_, lines)| *lines > 600)
        .collect();
    assert!(long.is_empty(), "files over 600 lines: {long:?}");
}

#[test]
fn the_count_sees_every_kind_of_public_name() {
    let text = r#"
        //! pub use docs::Ignored;
        /* pub use comment::Ignored; */
        pub use a::{B, c::{D, E as F}, self};
        #[cfg(feature = "x")]
        pub mod g;
        pub(crate) use h::I;
        mod j { pub use k::L; const S: &str = "}{"; const C: char = '{'; }
        pub struct M;
        pub const fn n() {}
        pub const O: u8 = 0;
    "#;
    assert_eq!(public_names(text), ["B", "D", "F", "a", "g", "M", "n", "O"]);
}

/// The public names a crate root's text declares at its top level: each `pub use` leaf (its
/// `as` name, or the module for `self`) and each `pub` item. A glob cannot be counted.
fn public_names(text: &str) -> Vec<String> {
    const ITEM: [&str; 13] = [
        "mod", "fn", "struct", "enum", "trait", "type", "const", "static", "union", "unsafe", "async",
        "extern", "macro",
    ];
    let tokens = tokens(text);
    let mut names = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].as_str() {
            "{" => depth += 1,
            "}" => depth -= 1,
            "pub" if depth == 0 && tokens[i + 1] == "use" => {
                let end = i + tokens[i..]
                    .iter()
                    .position(|t| t == ";")
                    .expect("a `pub use` ends");
                names.extend(use_leaves(&tokens[i + 2..end]));
                i = end;
            }
            "pub" if depth == 0 && tokens[i + 1] != "(" => {
                let name = tokens[i + 1..].iter().find(|t| !ITEM.contains(&t.as_str()));
                names.push(name.expect("an item's name").clone());
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// The names a `use` tree brings in.
fn use_leaves(tree: &[String]) -> Vec<String> {
    assert!(
        !tree.iter().any(|t| t == "*"),
        "a glob `pub use` in the crate root cannot be counted"
    );
    let mut leaves = Vec::new();
    // The path segments open at each level of braces, and the last word seen.
    let mut path: Vec<Vec<String>> = vec![Vec::new()];
    let mut last: Option<String> = None;
    let finish = |leaves: &mut Vec<String>, path: &[Vec<String>], last: &mut Option<String>| match last
        .take()
        .as_deref()
    {
        Some("self") => leaves.push(path.iter().flatten().last().expect("`self` of a module").clone()),
        Some(name) => leaves.push(name.to_owned()),
        None => {}
    };
    for token in tree {
        match token.as_str() {
            "::" => path.last_mut().unwrap().extend(last.take()),
            "{" => path.push(Vec::new()),
            "," | "}" => {
                finish(&mut leaves, &path, &mut last);
                if token == "}" {
                    path.pop();
                }
                path.last_mut().unwrap().clear();
            }
            "as" => {}
            word => last = Some(word.to_owned()),
        }
    }
    finish(&mut leaves, &path, &mut last);
    leaves
}

/// Words, `::`, and single punctuation, with comments, strings and characters left out.
fn tokens(code: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        let mut ahead = chars.clone();
        match (c, ahead.next(), ahead.next()) {
            ('/', Some('/'), _) => {
                chars.by_ref().find(|&c| c == '\n');
            }
            ('/', Some('*'), _) => {
                let mut previous = ' ';
                chars
                    .by_ref()
                    .find(|&c| std::mem::replace(&mut previous, c) == '*' && c == '/');
            }
            ('r', Some('#' | '"'), _) => {
                let hashes = std::iter::from_fn(|| chars.next_if_eq(&'#')).count();
                assert_eq!(chars.next(), Some('"'), "a raw string");
                let end = format!("\"{}", "#".repeat(hashes));
                let mut text = String::new();
                while !text.ends_with(&end) {
                    text.push(chars.next().expect("a raw string ends"));
                }
            }
            ('"', _, _) => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => drop(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            // A character: 'x', or escaped ('\n', '\u{1b}'); a lifetime ('a) is left a word.
            ('\'', Some('\\'), _) => {
                chars.next();
                chars.next();
                chars.by_ref().find(|&c| c == '\'');
            }
            ('\'', Some(_), Some('\'')) => {
                chars.next();
                chars.next();
            }
            (':', Some(':'), _) => {
                chars.next();
                tokens.push("::".to_owned());
            }
            (c, _, _) if c.is_alphanumeric() || c == '_' => {
                let mut word = c.to_string();
                while let Some(next) = chars.next_if(|n| n.is_alphanumeric() || *n == '_') {
                    word.push(next);
                }
                tokens.push(word);
            }
            (c, _, _) if !c.is_whitespace() => tokens.push(c.to_string()),
            _ => {}
        }
    }
    tokens
}

/// Every `.rs` file under `dir` (relative to the package), with its text.
fn files(dir: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(dir)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                found.push((path.to_string_lossy().replace('\\', "/"), text));
            }
        }
    }
    found
}
