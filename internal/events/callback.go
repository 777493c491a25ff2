package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/smartrent-bridge/bridge/schemas"
)

// structuredCallback is the structured-mode JSON of a callback event, with
// the same attributes, in the same form, as [Codec.Encode] writes.
type structuredCallback struct {
	SpecVersion     string           `json:"specversion"`
	ID              string           `json:"id"`
	Source          string           `json:"source"`
	Type            string           `json:"type"`
	Subject         string           `json:"subject"`
	Time            string           `json:"time"`
	DataContentType string           `json:"datacontenttype"`
	DataSchema      string           `json:"dataschema"`
	TraceParent     string           `json:"traceparent,omitempty"`
	Data            CallbackReceived `json:"data"`
}

// EncodeCallback is the ingress's hot path: it encodes a callback event
// like New+Encode would, but checks the schema on the event's own fields
// and takes the body's shape (a JSON object) from the caller, who has just
// parsed it, instead of parsing the body again. d.Body must be a JSON
// object.
func (c *Codec) EncodeCallback(id, source, traceparent string, d CallbackReceived) ([]byte, error) {
	shape := map[string]any{
		"orderId":    d.OrderID,
		"receivedAt": d.ReceivedAt.UTC().Format(time.RFC3339Nano),
		"body":       map[string]any{},
	}
	for k, v := range map[string]string{"shop": d.Shop, "sessionUuid": d.SessionUUID, "status": d.Status} {
		if v != "" {
			shape[k] = v
		}
	}
	if err := c.schemas.ValidateValue(TypeCallbackReceived, shape); err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	b, err := json.Marshal(structuredCallback{
		SpecVersion: "1.0", ID: id, Source: source, Type: TypeCallbackReceived, Subject: d.OrderID,
		Time: c.now().UTC().Format(time.RFC3339Nano), DataContentType: ContentTypeJSON,
		DataSchema: schemas.ID(TypeCallbackReceived), TraceParent: traceparent, Data: d,
	})
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", TypeCallbackReceived, err)
	}
	return b, nil
}
