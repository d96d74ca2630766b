//! The header lines of an HTTP/1.x answer read off a raw socket, for the tests that speak HTTP
//! by hand (`web_server`, the real-box client). It parses nothing else: status lines and bodies
//! are each test's own business.

use std::io::{self, BufRead};

/// The header lines up to the blank line that ends them (or EOF), each name and value trimmed;
/// a line without a `:` is skipped.
pub fn read_headers(r: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l)? == 0 {
            break;
        }
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(headers)
}
