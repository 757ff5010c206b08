//! Bounds on what one DAG file's problems may say, so that a hostile or generated file (twenty
//! thousand tasks with broken dependencies) gives a short report instead of gigabytes of text:
//! an unknown name gets a few near names, never the list of all of them, and a file reports at
//! most [`MAX_PROBLEMS_PER_FILE`] problems in at most [`MAX_PROBLEM_TEXT_PER_FILE`] bytes. The
//! import errors the daemon keeps, stores and serves are these problems, so they stay small too.

use super::Problem;
use crate::domain::suggest::edit_distance;

/// Most problems listed for one file; the rest are counted in one closing problem.
pub const MAX_PROBLEMS_PER_FILE: usize = 100;

/// Most bytes of message text for one file, the closing count included.
pub const MAX_PROBLEM_TEXT_PER_FILE: usize = 64 * 1024;

/// Most bytes of one message: a message quotes what the file says, which may be a huge value.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024;

/// Near names offered for an unknown one.
const MAX_SUGGESTIONS: usize = 3;

/// Unknown names per file that get near names. Each search compares the name with every known
/// one, so a file of twenty thousand tasks that all name missing ones would otherwise cost
/// hundreds of millions of comparisons; past the first few, a list of suggestions helps nobody.
const MAX_NAMES_SUGGESTED_FOR: usize = 20;

/// Room kept for the closing "... and N more problems" and the notes of cut messages.
const CLOSING_RESERVE: usize = 256;

/// Finds known names near an unknown one, within a budget of searches per file.
pub(super) struct NearNames<'a> {
    known: Vec<&'a str>,
    searches_left: usize,
}

impl<'a> NearNames<'a> {
    pub(super) fn new(known: impl IntoIterator<Item = &'a str>) -> Self {
        NearNames {
            known: known.into_iter().collect(),
            searches_left: MAX_NAMES_SUGGESTED_FOR,
        }
    }

    /// Up to three known names within a few edits of `wanted`, all at the nearest distance found
    /// (by name), or `None` once this file's searches are spent.
    pub(super) fn near(&mut self, wanted: &str) -> Option<Vec<&'a str>> {
        if self.searches_left == 0 {
            return None;
        }
        self.searches_left -= 1;
        let wanted_length = wanted.chars().count();
        let limit = (wanted_length / 3).clamp(1, 3);
        let mut near: Vec<(usize, &'a str)> = self
            .known
            .iter()
            // The distance is at least the difference in length: skip the search when that is
            // already too far (this also keeps a huge unknown name from being compared at all).
            .filter(|candidate| candidate.chars().count().abs_diff(wanted_length) <= limit)
            .map(|candidate| (edit_distance(wanted, candidate), *candidate))
            .filter(|(distance, _)| *distance <= limit)
            .collect();
        near.sort_unstable();
        // Only the nearest: `tsk_00001` suggests `task_00001`, not also its neighbours one edit further.
        let nearest = near.first().map(|(distance, _)| *distance);
        near.retain(|(distance, _)| Some(*distance) == nearest);
        near.truncate(MAX_SUGGESTIONS);
        Some(near.into_iter().map(|(_, name)| name).collect())
    }
}

/// What to say after "depends on unknown task `x`": the near names, if any were searched for.
pub(super) fn unknown_name_hint(near: Option<&[&str]>) -> String {
    match near {
        Some([]) => "no task has a similar id; fix the name or add the task".to_string(),
        Some(names) => {
            let names: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
            format!("did you mean {}? Fix the name or add the task", names.join(" or "))
        }
        None => "fix the name or add the task".to_string(),
    }
}

/// `problems` within the bounds above: the first [`MAX_PROBLEMS_PER_FILE`], each message cut to
/// [`MAX_MESSAGE_BYTES`], all of them within [`MAX_PROBLEM_TEXT_PER_FILE`], and a closing problem
/// (at the first one left out) counting what was left out.
pub fn bounded(problems: Vec<Problem>) -> Vec<Problem> {
    let total = problems.len();
    let text_budget = MAX_PROBLEM_TEXT_PER_FILE - CLOSING_RESERVE;
    let mut kept: Vec<Problem> = Vec::new();
    let mut text = 0;
    let mut first_left_out = None;
    for mut problem in problems {
        if kept.len() == MAX_PROBLEMS_PER_FILE || text >= text_budget {
            first_left_out = Some((problem.line, problem.column));
            break;
        }
        cut(&mut problem.message, MAX_MESSAGE_BYTES.min(text_budget - text));
        text += problem.message.len();
        kept.push(problem);
    }
    if let Some((line, column)) = first_left_out {
        let left_out = total - kept.len();
        kept.push(Problem {
            line,
            column,
            message: format!(
                "... and {left_out} more problems not shown (a file lists at most {MAX_PROBLEMS_PER_FILE} in {} KiB): fix the ones above and validate again",
                MAX_PROBLEM_TEXT_PER_FILE / 1024
            ),
        });
    }
    kept
}

/// Cuts `message` to at most `limit` bytes, on a character boundary, with a note saying so.
fn cut(message: &mut String, limit: usize) {
    if message.len() <= limit {
        return;
    }
    let note = format!(" [... cut: the message was {} bytes]", message.len());
    let mut end = limit.saturating_sub(note.len());
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message.push_str(&note);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(line: u32, message: &str) -> Problem {
        Problem {
            line,
            column: 1,
            message: message.to_string(),
        }
    }

    #[test]
    fn a_few_problems_pass_unchanged() {
        let problems = vec![problem(1, "one"), problem(2, "two")];
        assert_eq!(bounded(problems.clone()), problems);
    }

    #[test]
    fn past_the_limit_the_rest_are_counted_at_the_first_one_left_out() {
        let problems: Vec<Problem> = (1..=20_000).map(|line| problem(line, "broken")).collect();
        let kept = bounded(problems);
        assert_eq!(kept.len(), MAX_PROBLEMS_PER_FILE + 1);
        let closing = &kept[MAX_PROBLEMS_PER_FILE];
        assert_eq!(closing.line, 101);
        assert!(
            closing.message.starts_with("... and 19900 more problems not shown"),
            "{closing:?}"
        );
    }

    #[test]
    fn a_huge_message_is_cut_on_a_character_boundary_with_a_note() {
        let huge = format!("unknown pool `{}`", "é".repeat(1_000_000));
        let kept = bounded(vec![problem(3, &huge)]);
        assert_eq!(kept.len(), 1);
        assert!(kept[0].message.len() <= MAX_MESSAGE_BYTES, "{}", kept[0].message.len());
        assert!(kept[0].message.starts_with("unknown pool `éé"));
        assert!(kept[0].message.ends_with("[... cut: the message was 2000015 bytes]"));
    }

    #[test]
    fn the_text_of_one_file_stays_within_its_budget() {
        let long = "x".repeat(MAX_MESSAGE_BYTES * 2);
        let kept = bounded((1..=90).map(|line| problem(line, &long)).collect());
        let text: usize = kept.iter().map(|problem| problem.message.len()).sum();
        assert!(text <= MAX_PROBLEM_TEXT_PER_FILE, "{text}");
        assert!(kept.last().unwrap().message.contains("more problems not shown"));
    }

    #[test]
    fn near_names_are_few_and_close_and_searched_a_bounded_number_of_times() {
        let known: Vec<String> = (0..20_000).map(|index| format!("task_{index}")).collect();
        let mut near = NearNames::new(known.iter().map(String::as_str).chain(["extract", "load"]));
        assert_eq!(near.near("extrac"), Some(vec!["extract"]));
        assert_eq!(near.near("lod"), Some(vec!["load"]));
        assert_eq!(near.near("completely_different"), Some(vec![]));
        let suggestions = near.near("task_1x").unwrap();
        assert_eq!(suggestions.len(), 3, "{suggestions:?}");
        for _ in 4..MAX_NAMES_SUGGESTED_FOR {
            near.near("nope");
        }
        assert_eq!(near.near("extrac"), None, "the searches of a file are bounded");
    }

    #[test]
    fn the_hint_names_the_near_names_or_says_there_are_none() {
        assert_eq!(
            unknown_name_hint(Some(&["extract", "extract2"])),
            "did you mean `extract` or `extract2`? Fix the name or add the task"
        );
        assert_eq!(
            unknown_name_hint(Some(&[])),
            "no task has a similar id; fix the name or add the task"
        );
        assert_eq!(unknown_name_hint(None), "fix the name or add the task");
    }
}
