//! Masking of secrets in task log output, including safe split points for over-long lines.

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// A set of secrets prepared once per attempt, so that masking each log line does not
/// have to filter and sort the secrets again.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Non-empty, deduplicated, longest first.
    secrets: Vec<String>,
}

impl Masker {
    /// Prepares `secrets` for masking; empty strings are ignored because they would
    /// "occur" everywhere.
    pub fn new(secrets: &[String]) -> Self {
        let mut secrets: Vec<String> = secrets.iter().filter(|s| !s.is_empty()).cloned().collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Self { secrets }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Replaces every occurrence of every secret in `line` by [`MASK`].
    ///
    /// All occurrences (overlapping ones included) are collected first and overlapping
    /// ranges are merged before replacing. A plain "replace one secret after the other"
    /// would leak fragments when secrets overlap (`abc` and `xab` in `xabc`); merging
    /// covers that and also masks a secret that contains another one as a whole.
    pub fn mask(&self, line: &str) -> String {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for secret in &self.secrets {
            // Stepping by the first character (not by the whole secret) also finds
            // overlapping occurrences such as `aa` twice in `aaa`.
            let step = secret.chars().next().map_or(1, char::len_utf8);
            let mut from = 0;
            while let Some(found) = line[from..].find(secret.as_str()) {
                let start = from + found;
                ranges.push((start, start + secret.len()));
                from = start + step;
            }
        }
        if ranges.is_empty() {
            return line.to_owned();
        }
        ranges.sort_unstable();
        let mut masked = String::with_capacity(line.len());
        let mut copied_to = 0;
        let mut current: Option<(usize, usize)> = None;
        for (start, end) in ranges {
            match current {
                // Overlapping (not merely adjacent) occurrences become one mask, so
                // that no fragment of either secret is left between two masks.
                Some((cur_start, cur_end)) if start < cur_end => {
                    current = Some((cur_start, cur_end.max(end)));
                }
                _ => {
                    if let Some((cur_start, cur_end)) = current {
                        masked.push_str(&line[copied_to..cur_start]);
                        masked.push_str(MASK);
                        copied_to = cur_end;
                    }
                    current = Some((start, end));
                }
            }
        }
        if let Some((cur_start, cur_end)) = current {
            masked.push_str(&line[copied_to..cur_start]);
            masked.push_str(MASK);
            copied_to = cur_end;
        }
        masked.push_str(&line[copied_to..]);
        masked
    }

    /// Where to split a full line buffer (`buf`, no newline in it) so that the first
    /// part can be masked and emitted on its own without leaking part of a secret.
    ///
    /// The split point is moved back to the start of any secret occurrence that would
    /// straddle it, including a secret that is only begun at the end of `buf` (its rest
    /// has not been read yet). It is also kept off the middle of a UTF-8 sequence so the
    /// text of both parts decodes cleanly. Returns a value in `1..=buf.len()` for a
    /// non-empty `buf`: when no safe point exists (a secret longer than the whole
    /// buffer, or a buffer that is one long chain of overlapping occurrences), the whole
    /// buffer is emitted, because bounding memory matters more than that corner case.
    pub fn safe_split_point(&self, buf: &[u8]) -> usize {
        let len = buf.len();
        let mut cut = len;
        loop {
            let mut new_cut = cut;
            for secret in &self.secrets {
                let secret = secret.as_bytes();
                // Only occurrences starting less than a secret's length before the cut
                // can reach across it.
                let lowest = cut.saturating_sub(secret.len() - 1);
                for start in lowest..cut {
                    let rest = &buf[start..];
                    let compared = rest.len().min(secret.len());
                    if rest[..compared] == secret[..compared] {
                        new_cut = new_cut.min(start);
                        break;
                    }
                }
            }
            if new_cut == cut {
                break;
            }
            cut = new_cut;
        }
        let cut = utf8_boundary_at_or_before(buf, cut);
        if cut == 0 { len } else { cut }
    }
}

/// Moves `cut` back to the start of the UTF-8 sequence it would otherwise split.
///
/// Only the three bytes before `cut` can belong to a sequence reaching across it.
/// Invalid bytes are treated as one-byte sequences; lossy decoding handles them.
fn utf8_boundary_at_or_before(buf: &[u8], cut: usize) -> usize {
    for start in (cut.saturating_sub(3)..cut).rev() {
        let byte = buf[start];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: keep looking for the lead byte
        }
        let sequence_len = match byte {
            0b1100_0000..=0b1101_1111 => 2,
            0b1110_0000..=0b1110_1111 => 3,
            0b1111_0000..=0b1111_0111 => 4,
            _ => 1,
        };
        return if start + sequence_len > cut { start } else { cut };
    }
    cut
}

/// Replaces every occurrence of each non-empty secret in `line` by `***`.
///
/// A secret that contains another secret is masked as a whole, and overlapping
/// occurrences of different secrets are masked together, so no fragment leaks.
pub fn mask_secrets(line: &str, secrets: &[String]) -> String {
    Masker::new(secrets).mask(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn every_occurrence_of_a_secret_is_masked() {
        let masked = mask_secrets("pw=hunter2 again hunter2.", &secrets(&["hunter2"]));
        assert_eq!(masked, "pw=*** again ***.");
    }

    #[test]
    fn empty_secrets_are_ignored() {
        assert_eq!(mask_secrets("nothing here", &secrets(&["", ""])), "nothing here");
    }

    #[test]
    fn a_secret_containing_another_is_masked_whole() {
        let masked = mask_secrets("token=abc123xyz", &secrets(&["abc", "abc123xyz"]));
        assert_eq!(masked, "token=***");
    }

    #[test]
    fn overlapping_secrets_leave_no_fragment() {
        assert_eq!(mask_secrets("-xabc-", &secrets(&["abc", "xab"])), "-***-");
        assert_eq!(mask_secrets("aaa", &secrets(&["aa"])), "***");
    }

    #[test]
    fn adjacent_occurrences_are_masked_separately() {
        assert_eq!(mask_secrets("s3cr3ts3cr3t", &secrets(&["s3cr3t"])), "******");
    }

    #[test]
    fn non_ascii_text_and_secrets_are_masked() {
        assert_eq!(mask_secrets("é-pässwörd-é", &secrets(&["pässwörd"])), "é-***-é");
    }

    #[test]
    fn split_point_is_the_end_when_no_secret_is_near_it() {
        let masker = Masker::new(&secrets(&["secret"]));
        assert_eq!(masker.safe_split_point(b"plain text"), 10);
        assert_eq!(Masker::new(&[]).safe_split_point(b"plain text"), 10);
    }

    #[test]
    fn split_point_moves_before_a_secret_begun_at_the_end() {
        let masker = Masker::new(&secrets(&["secret"]));
        assert_eq!(masker.safe_split_point(b"xxxxsecr"), 4);
    }

    #[test]
    fn split_point_moves_before_a_chain_of_straddling_secrets() {
        // "abcd" is complete but "cdx" begins at the end; cutting before "cd" alone
        // would split "abcd", so the cut has to move back before "ab".
        let masker = Masker::new(&secrets(&["abcd", "cdx"]));
        assert_eq!(masker.safe_split_point(b"0123abcd"), 4);
    }

    #[test]
    fn split_point_does_not_cut_a_utf8_character() {
        let text = "aaa\u{20ac}".as_bytes(); // the euro sign is E2 82 AC
        let masker = Masker::new(&[]);
        assert_eq!(masker.safe_split_point(&text[..4]), 3);
        assert_eq!(masker.safe_split_point(&text[..5]), 3);
        assert_eq!(masker.safe_split_point(text), 6);
    }

    #[test]
    fn split_point_falls_back_to_the_whole_buffer() {
        let masker = Masker::new(&secrets(&["a much longer secret"]));
        assert_eq!(masker.safe_split_point(b"a much"), 6);
    }
}
