package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/smartrent-bridge/bridge/schemas"
)

// EncodeCallback is the ingress's hot path: it writes a callback event as
// New+Encode would (TestEncodeCallbackMatchesGenericEncoding keeps them
// equal, and checks the result against the schema) without building the
// event twice. The caller has checked what the schema asks of the values:
// the order id and shop came from a verified token (within the limit of
// package ids), sessionUuid and status are strings of at most 100
// characters, and d.Body is one valid JSON object, written as received.
func (c *Codec) EncodeCallback(id, source, traceparent string, d CallbackReceived) ([]byte, error) {
	return c.AppendCallback(make([]byte, 0, 512+len(d.Body)), id, source, traceparent, d)
}

// AppendCallback is EncodeCallback appending to b (a reused buffer).
func (c *Codec) AppendCallback(b []byte, id, source, traceparent string, d CallbackReceived) ([]byte, error) {
	if d.OrderID == "" || d.ReceivedAt.IsZero() || len(d.Body) == 0 {
		return nil, fmt.Errorf("encode %s event: orderId, receivedAt and body are required", TypeCallbackReceived)
	}
	str := func(key, v string) {
		b = append(b, ',', '"')
		b = append(b, key...)
		b = append(b, '"', ':')
		b = appendJSONString(b, v)
	}
	b = append(b, `{"specversion":"1.0"`...)
	str("id", id)
	str("source", source)
	str("type", TypeCallbackReceived)
	str("subject", d.OrderID)
	b = append(b, `,"time":"`...)
	b = c.now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	str("datacontenttype", ContentTypeJSON)
	str("dataschema", schemas.ID(TypeCallbackReceived))
	if traceparent != "" {
		str("traceparent", traceparent)
	}
	b = append(b, `,"data":{"orderId":`...)
	b = appendJSONString(b, d.OrderID)
	if d.Shop != "" {
		str("shop", d.Shop)
	}
	if d.SessionUUID != "" {
		str("sessionUuid", d.SessionUUID)
	}
	if d.Status != "" {
		str("status", d.Status)
	}
	b = append(b, `,"receivedAt":"`...)
	b = d.ReceivedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","body":`...)
	b = append(b, d.Body...)
	b = append(b, '}', '}')
	return b, nil
}

// appendJSONString appends s as a JSON string: as is when it needs no
// escaping (ids, times, URIs: the usual case), else as encoding/json
// writes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
