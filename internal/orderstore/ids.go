package orderstore

import (
	"fmt"
	"strings"

	"github.com/smartrent-bridge/bridge/internal/ids"
)

// validKey is what the store sends to the server: KV key characters
// [-/_=.a-zA-Z0-9], at least one. A loop, not a regexp: every load and
// write checks its key, and the regexp cost about 1 % of the bridge's CPU.
func validKey(key string) bool {
	for i := 0; i < len(key); i++ {
		if c := key[i]; !ids.IsAlnum(c) && strings.IndexByte("-/_=.", c) < 0 {
			return false
		}
	}
	return key != ""
}

// maxKeyLen bounds a key (an id at the limit with the longest alias
// makes 1,132).
const maxKeyLen = 1200

// checkKey refuses a key that nats-server would refuse or that could
// close the connection, before anything is sent.
func checkKey(key string) error {
	if len(key) > maxKeyLen || !validKey(key) {
		return fmt.Errorf("state key of %d bytes is not a valid KV key: %w", len(key), ids.ErrInvalidID)
	}
	return nil
}
