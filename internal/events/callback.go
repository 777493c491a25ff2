package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/smartrent-bridge/bridge/schemas"
)

// EncodeCallback is the ingress's hot path: it encodes a callback event
// like New+Encode would, but checks the schema on the event's own fields
// and takes the body's shape (a JSON object) from the caller, who has just
// parsed it, instead of parsing the body again. d.Body must be a valid
// JSON object.
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
	// Written by hand: the body is appended as received instead of being
	// compacted and re-validated by encoding/json (the caller parsed it).
	b := make([]byte, 0, 512+len(d.Body))
	str := func(key, v string) {
		q, _ := json.Marshal(v)
		b = append(b, ',', '"')
		b = append(b, key...)
		b = append(b, '"', ':')
		b = append(b, q...)
	}
	b = append(b, `{"specversion":"1.0"`...)
	str("id", id)
	str("source", source)
	str("type", TypeCallbackReceived)
	str("subject", d.OrderID)
	str("time", c.now().UTC().Format(time.RFC3339Nano))
	str("datacontenttype", ContentTypeJSON)
	str("dataschema", schemas.ID(TypeCallbackReceived))
	if traceparent != "" {
		str("traceparent", traceparent)
	}
	b = append(b, `,"data":{"orderId":`...)
	q, _ := json.Marshal(d.OrderID)
	b = append(b, q...)
	if d.Shop != "" {
		str("shop", d.Shop)
	}
	if d.SessionUUID != "" {
		str("sessionUuid", d.SessionUUID)
	}
	if d.Status != "" {
		str("status", d.Status)
	}
	str("receivedAt", d.ReceivedAt.UTC().Format(time.RFC3339Nano))
	b = append(b, `,"body":`...)
	b = append(b, d.Body...)
	b = append(b, '}', '}')
	return b, nil
}
