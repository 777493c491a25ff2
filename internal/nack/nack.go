// Package nack renders the JetStream objects the binaries create as
// resources of the NATS JetStream controller for Kubernetes (NACK,
// jetstream.nats.io/v1beta2), for teams that manage JetStream by GitOps
// and run the binaries with PROVISION=false.
//
// The input is what the binaries really create: the stream and consumer
// configurations as the server reports them after streams.ProvisionBridge
// (the key-value buckets are streams KV_<bucket>, so they are rendered as
// Stream resources: their per-key TTL settings have exact fields there).
// deploy/nack/ is generated from it and kept in step by a test.
package nack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"
)

// APIVersion is the NACK API the resources use.
const APIVersion = "jetstream.nats.io/v1beta2"

// Resource is one Kubernetes object.
type Resource struct {
	APIVersion string         `yaml:"apiVersion"`
	Kind       string         `yaml:"kind"`
	Metadata   Metadata       `yaml:"metadata"`
	Spec       map[string]any `yaml:"spec"`
}

// Metadata names a resource.
type Metadata struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels,omitempty"`
}

// Kubernetes names are DNS labels: lower case, digits and '-'.
func resourceName(s string) string {
	return strings.Trim(strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(s)), "-")
}

var labels = map[string]string{"app.kubernetes.io/part-of": "smartrent-bridge"}

func dur(d time.Duration) string { return d.String() }

// Stream renders a stream configuration.
func Stream(c jetstream.StreamConfig) Resource {
	spec := map[string]any{
		"name": c.Name, "description": c.Description, "subjects": c.Subjects,
		"retention": apiString(c.Retention), "storage": apiString(c.Storage), "replicas": c.Replicas,
		"discard": apiString(c.Discard), "maxBytes": c.MaxBytes, "maxMsgs": c.MaxMsgs,
		"maxMsgsPerSubject": c.MaxMsgsPerSubject, "maxMsgSize": c.MaxMsgSize,
		"duplicateWindow": dur(c.Duplicates),
	}
	if c.MaxAge > 0 {
		spec["maxAge"] = dur(c.MaxAge)
	}
	for k, v := range map[string]bool{"allowRollup": c.AllowRollup, "allowDirect": c.AllowDirect, "denyDelete": c.DenyDelete, "allowMsgTtl": c.AllowMsgTTL} {
		if v {
			spec[k] = true
		}
	}
	if c.SubjectDeleteMarkerTTL > 0 {
		spec["subjectDeleteMarkerTtl"] = dur(c.SubjectDeleteMarkerTTL)
	}
	return Resource{APIVersion: APIVersion, Kind: "Stream", Metadata: Metadata{Name: resourceName(c.Name), Labels: labels}, Spec: spec}
}

// apiString is a policy as the JetStream API spells it ("limits", "file",
// "new", "explicit"), which NACK takes as is.
func apiString(v json.Marshaler) string {
	b, err := v.MarshalJSON()
	var out string
	if err != nil || json.Unmarshal(b, &out) != nil {
		return ""
	}
	return out
}

// Consumer renders a durable consumer of stream.
func Consumer(stream string, c jetstream.ConsumerConfig) Resource {
	spec := map[string]any{
		"streamName": stream, "durableName": c.Durable, "description": c.Description,
		"deliverPolicy": apiString(c.DeliverPolicy), "ackPolicy": apiString(c.AckPolicy), "ackWait": dur(c.AckWait),
		"maxDeliver": c.MaxDeliver, "maxAckPending": c.MaxAckPending, "replicas": c.Replicas,
		"filterSubjects": c.FilterSubjects, "replayPolicy": "instant",
	}
	if c.MaxWaiting > 0 {
		spec["maxWaiting"] = c.MaxWaiting
	}
	return Resource{APIVersion: APIVersion, Kind: "Consumer", Metadata: Metadata{Name: resourceName(c.Durable), Labels: labels}, Spec: spec}
}

// YAML is the resources as one multi-document file under header, a
// comment that says where it comes from.
func YAML(header string, rs []Resource) ([]byte, error) {
	var buf bytes.Buffer
	for _, line := range strings.Split(strings.TrimSpace(header), "\n") {
		fmt.Fprintf(&buf, "# %s\n", line)
	}
	for _, r := range rs {
		buf.WriteString("---\n")
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(r); err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.Kind, r.Metadata.Name, err)
		}
		if err := enc.Close(); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}
