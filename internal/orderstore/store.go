package orderstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/smartrent-bridge/bridge/internal/events"
	"iter"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Store errors.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("revision conflict") // someone else changed it since it was loaded
)

// StateStore keeps one JSON document per order in a KV bucket, changed
// only by compare-and-set. Keys are [StateKey]s, used as given and
// checked before anything is sent.
//
// It remembers what it last read or wrote for each key, decoded, so the
// many loads of one order's workflow neither go to the server nor decode
// JSON again: a load hands out a deep copy ([Copier]), which the caller
// may change freely. A remembered value may be stale when another bridge
// changed the order since: the next Save then fails with ErrConflict
// (compare-and-set), the entry is forgotten and the caller loads the
// fresh value. Nothing is decided on a stale value that is not checked by
// a compare-and-set before it has an effect.
type StateStore[T events.Copier[T]] struct {
	kv jetstream.KeyValue

	// js and prepare, when set (see ExpireWith), give a value a per-key
	// TTL when it is written.
	js      jetstream.JetStream
	prepare func(*T) time.Duration

	mu   sync.Mutex
	seen *simplelru.LRU[string, seenEntry[T]] // guarded by mu

	// buffers holds *bytes.Buffer to encode values into. A publish copies
	// the value into the connection's buffer before it returns, so a
	// buffer is reused once its write returned, instead of a new copy of
	// the document (json.Marshal's result, ~2 KB per order) on every write.
	buffers sync.Pool
}

// maxPooledBuffer keeps an unusually large document's buffer out of the
// pool: it would stay allocated for every later write.
const maxPooledBuffer = 64 << 10

type seenEntry[T any] struct {
	rev uint64
	val T // never changed once remembered; handed out as deep copies only
}

// NewStateStore wraps a KV bucket, remembering up to 1,024 orders: enough
// for the orders being worked on, small next to the memory target. The
// least recently used is forgotten first: an order being worked on is
// used every few milliseconds, a finished one no more. (An arbitrary one
// was, before: at 256 orders in flight, some 500 writes per 100 ms
// evicting at random among 1,024 entries take an order's entry between
// its claim and its record often (about 40 % by that arithmetic), and the
// order is read back from the server; remembering without a limit cut
// nats-server's CPU per order by 15 % in soak versus.)
func NewStateStore[T events.Copier[T]](kv jetstream.KeyValue) *StateStore[T] {
	const limit = 1024
	seen, err := simplelru.NewLRU[string, seenEntry[T]](limit, nil)
	if err != nil {
		panic(err) // only for a size below 1
	}
	s := &StateStore[T]{kv: kv, seen: seen}
	s.buffers.New = func() any { return new(bytes.Buffer) }
	return s
}

// ExpireWith makes every write of a value pass through prepare first; a
// positive duration it returns is the value's time to live, after which
// JetStream itself removes the key (a per-key TTL: the bucket needs a
// limit marker TTL, nats-server 2.11 or later). prepare may also change
// the value (drop what must not be kept). js publishes the TTL header,
// which the KV API offers on Create only.
func (s *StateStore[T]) ExpireWith(js jetstream.JetStream, prepare func(*T) time.Duration) {
	s.js, s.prepare = js, prepare
}

// encode prepares and marshals v into a buffer of the pool, returning
// the value as written and its time to live (0: none); the caller hands
// the buffer back with release once the write returned. The value shares
// memory with the caller's.
func (s *StateStore[T]) encode(key string, v T) (*bytes.Buffer, T, time.Duration, error) {
	var ttl time.Duration
	if s.prepare != nil {
		ttl = s.prepare(&v)
	}
	buf := s.buffers.Get().(*bytes.Buffer)
	buf.Reset()
	// &v: v is on the heap already (prepare took its address); encoding
	// v itself would box another copy of the whole order.
	if err := json.NewEncoder(buf).Encode(&v); err != nil {
		s.release(buf)
		return nil, v, 0, fmt.Errorf("encode order %s: %w", key, err)
	}
	// Encode ends the document with a newline; the stored value is what
	// json.Marshal writes.
	buf.Truncate(buf.Len() - 1)
	return buf, v, ttl, nil
}

// release returns an encode buffer to the pool.
func (s *StateStore[T]) release(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBuffer {
		s.buffers.Put(buf)
	}
}

// remember keeps val, which the caller must not change afterwards.
func (s *StateStore[T]) remember(key string, rev uint64, val T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.seen.Peek(key); ok && old.rev >= rev {
		return // a read that raced a newer write must not replace it
	}
	s.seen.Add(key, seenEntry[T]{rev: rev, val: val}) // the least recently used goes beyond the limit
}

func (s *StateStore[T]) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen.Remove(key)
}

// Load returns the order's state and its revision, or ErrNotFound. It may
// answer from what this store last read or wrote (see [StateStore]).
func (s *StateStore[T]) Load(ctx context.Context, key string) (T, uint64, error) {
	return s.load(ctx, key, false)
}

// LoadFresh is Load from the server, for decisions that no
// compare-and-set will check.
func (s *StateStore[T]) LoadFresh(ctx context.Context, key string) (T, uint64, error) {
	return s.load(ctx, key, true)
}

func (s *StateStore[T]) load(ctx context.Context, key string, fresh bool) (T, uint64, error) {
	if err := checkKey(key); err != nil {
		var zero T
		return zero, 0, err
	}
	if !fresh {
		s.mu.Lock()
		e, ok := s.seen.Get(key) // now the most recently used
		s.mu.Unlock()
		if ok {
			return e.val.DeepCopy(), e.rev, nil
		}
	}
	return s.read(ctx, key)
}

// read loads key from the server and remembers it. Apart from load so
// that the value it decodes into (which escapes to the heap) is not
// allocated on every load answered from memory.
func (s *StateStore[T]) read(ctx context.Context, key string) (T, uint64, error) {
	var v T
	entry, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return v, 0, fmt.Errorf("order %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return v, 0, fmt.Errorf("load order %s: %w", key, err)
	}
	if err := json.Unmarshal(entry.Value(), &v); err != nil {
		return v, 0, fmt.Errorf("decode order %s: %w", key, err)
	}
	s.remember(key, entry.Revision(), v.DeepCopy())
	return v, entry.Revision(), nil
}

// Create stores the first state of an order, or returns ErrExists.
func (s *StateStore[T]) Create(ctx context.Context, key string, v T) (uint64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	buf, written, ttl, err := s.encode(key, v)
	if err != nil {
		return 0, err
	}
	var opts []jetstream.KVCreateOpt
	if ttl > 0 {
		opts = append(opts, jetstream.KeyTTL(ttl))
	}
	rev, err := s.kv.Create(ctx, key, buf.Bytes(), opts...)
	s.release(buf)
	if errors.Is(err, jetstream.ErrKeyExists) {
		s.forget(key)
		return 0, fmt.Errorf("order %s: %w", key, ErrExists)
	}
	if err != nil {
		return 0, fmt.Errorf("create order %s: %w", key, err)
	}
	s.remember(key, rev, written.DeepCopy())
	return rev, nil
}

// Save replaces the state if it is still at rev, or returns ErrConflict.
// Conflicts are detected with jetstream.ErrKeyRevisionMismatch, as the
// library documents (it also covers replicated buckets' error code).
func (s *StateStore[T]) Save(ctx context.Context, key string, v T, rev uint64) (uint64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	buf, written, ttl, err := s.encode(key, v)
	if err != nil {
		return 0, err
	}
	var n uint64
	if ttl > 0 {
		n, err = s.updateWithTTL(ctx, key, buf.Bytes(), rev, ttl)
	} else {
		n, err = s.kv.Update(ctx, key, buf.Bytes(), rev)
	}
	s.release(buf)
	if err != nil {
		// On a conflict the remembered value is stale; on any other error
		// it is unknown whether the write happened.
		s.forget(key)
	}
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("order %s at revision %d: %w", key, rev, ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("save order %s: %w", key, err)
	}
	s.remember(key, n, written.DeepCopy())
	return n, nil
}

// All iterates over every stored order (for reconciliation). Entries that
// cannot be read are yielded with their error.
func (s *StateStore[T]) All(ctx context.Context) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		lister, err := s.kv.ListKeys(ctx)
		if err != nil {
			if errors.Is(err, jetstream.ErrNoKeysFound) {
				return
			}
			yield(zero, fmt.Errorf("list orders: %w", err))
			return
		}
		defer lister.Stop()
		for key := range lister.Keys() {
			e, err := s.kv.Get(ctx, key)
			if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
				continue
			}
			var v T
			if err == nil {
				err = json.Unmarshal(e.Value(), &v)
			}
			if !yield(v, err) {
				return
			}
		}
	}
}

// updateWithTTL is kv.Update with a per-message TTL: the same publish
// with the expected last sequence of the key's subject.
func (s *StateStore[T]) updateWithTTL(ctx context.Context, key string, b []byte, rev uint64, ttl time.Duration) (uint64, error) {
	msg := &nats.Msg{Subject: "$KV." + s.kv.Bucket() + "." + key, Data: b}
	ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(ttl))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return 0, jetstream.ErrKeyRevisionMismatch
	}
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}
