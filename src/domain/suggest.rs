//! "Did you mean": the known name nearest to a misspelt one, for unknown YAML keys, task ids in
//! `depends_on`, DAG ids on the command line and in the API, and connection names.

/// The candidate closest to `wanted`, if it is close enough to be the likely intent: at most a
/// third of `wanted`'s length in edits (one to three). Ties go to the first candidate.
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted_length = wanted.chars().count();
    let limit = (wanted_length / 3).clamp(1, 3);
    candidates
        .into_iter()
        // The distance is at least the difference in length: skip what is already too far.
        .filter(|candidate| candidate.chars().count().abs_diff(wanted_length) <= limit)
        .map(|candidate| (edit_distance(wanted, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: Levenshtein plus swaps of two neighbouring letters.
pub fn edit_distance(left: &str, right: &str) -> usize {
    let left: Vec<char> = left.chars().collect();
    let right: Vec<char> = right.chars().collect();
    let width = right.len() + 1;
    let mut table = vec![0usize; (left.len() + 1) * width];
    for i in 0..=left.len() {
        for j in 0..=right.len() {
            let cell = if i == 0 || j == 0 {
                i + j
            } else {
                let substitution = usize::from(left[i - 1] != right[j - 1]);
                let mut best = (table[(i - 1) * width + j] + 1)
                    .min(table[i * width + j - 1] + 1)
                    .min(table[(i - 1) * width + j - 1] + substitution);
                if i > 1 && j > 1 && left[i - 1] == right[j - 2] && left[i - 2] == right[j - 1] {
                    best = best.min(table[(i - 2) * width + j - 2] + 1);
                }
                best
            };
            table[i * width + j] = cell;
        }
    }
    table[left.len() * width + right.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_name_is_suggested_and_a_far_one_is_not() {
        let known = ["hello_world", "example_etl", "shop_etl", "shop_report"];
        let table = [
            ("hello_wrld", Some("hello_world")),
            ("helo_world", Some("hello_world")),
            ("ehllo_world", Some("hello_world")),
            ("shop_elt", Some("shop_etl")),
            ("shop_reports", Some("shop_report")),
            ("etl", None),
            ("something_else", None),
        ];
        for (wanted, expected) in table {
            assert_eq!(closest(wanted, known), expected, "{wanted}");
        }
    }

    #[test]
    fn a_swap_of_neighbours_is_one_edit() {
        assert_eq!(edit_distance("retires", "retries"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
