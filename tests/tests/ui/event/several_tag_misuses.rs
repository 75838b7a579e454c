// Several misuses of `#[tag]` in one event, each reported at once, with no follow-up
// error in the set that names the event.
use factum::{Events, event};

#[event(name = "InvoiceIssued")]
pub struct InvoiceIssued {
    #[tag = "invoice"]
    pub invoice_number: u64,
    #[tag(key = "customer")]
    pub customer_id: String,
    #[tag(name = 7)]
    pub order_id: String,
    #[tag()]
    pub batch: String,
    #[tag]
    #[tag(name = "again")]
    pub series: String,
    #[tag]
    #[serde(skip)]
    pub draft: bool,
    #[tag(name = "amount", name = "total")]
    pub amount: u64,
}

#[event(name = "InvoicePaid")]
pub struct InvoicePaid {
    #[tag(name = "invoice")]
    pub invoice_number: u64,
}

#[derive(Events)]
pub enum InvoiceEvent {
    Issued(InvoiceIssued),
    Paid(InvoicePaid),
}

fn main() {}
