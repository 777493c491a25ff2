// Package inbankapi is the Inbank Smart Rent e-POS partner API v3 as data:
// the resources its calls send and answer (rental conditions,
// calculation, session, contract, asset identifiers), the statuses they
// take, the checks a request must pass before it is sent, and the kinds of
// failure a call can end in (an answer other than 2xx, no answer, refused
// before sending) with which of them are worth retrying.
//
// It imports no networking: the order domain decides on these values
// without HTTP, and package inbank (the client) sends and reads them.
package inbankapi
