//! Names learned from the journal (issue 13, item 2): the CallerID names of the newest calls
//! from extensions, read back so a restart, `cdrbox export` and the USB copy know the same people
//! as the running box. Reads only; what a record teaches is [`crate::names::learned_from`].

use super::{JournalError, JournalReader};
use crate::filter::{Filter, Page, Sort};
use crate::names::Directory;

/// Records read back to learn extensions' CallerID names: enough to see every extension of an
/// office that called in the last days, cheap to read. The newest records of any direction,
/// not the newest calls *from extensions*: this runs at start-up before the links connect, and
/// a direction filter has no index, so on a journal of inbound calls only it would walk the
/// whole file (seconds on a million records) while calls go unheard (issue 10 item 4).
pub const NAMES_SEED_RECORDS: u32 = 5_000;

impl JournalReader {
    /// Teaches `names` the CallerID names of the calls from extensions among the newest
    /// [`NAMES_SEED_RECORDS`] records; the newest sighting of each number wins.
    pub fn learn_names(&self, names: &Directory) -> Result<(), JournalError> {
        let page = Page {
            limit: NAMES_SEED_RECORDS,
            offset: 0,
        };
        // Only calls from extensions teach a name (`crate::names::learned_from` decides).
        // Newest first, each number's first sighting kept: the newest one, and never over a
        // name the running box learned live meanwhile (this may run beside the links).
        self.query_each::<JournalError>(&Filter::default(), Sort::StartDesc, page, |rec| {
            if let Some((number, name)) = crate::names::learned_from(&rec) {
                names.learn_number_if_unknown(&number, &name);
            }
            Ok(())
        })?;
        Ok(())
    }
}
