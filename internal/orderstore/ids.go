package orderstore

import (
	"fmt"
	"regexp"

	"github.com/smartrent-bridge/bridge/internal/ids"
)

// validKey is what the store sends to the server: KV key characters, and
// at most maxKeyLen bytes (an id at the limit with the longest alias
// makes 1,132).
var validKey = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

const maxKeyLen = 1200

// checkKey refuses a key that nats-server would refuse or that could
// close the connection, before anything is sent.
func checkKey(key string) error {
	if len(key) > maxKeyLen || !validKey.MatchString(key) {
		return fmt.Errorf("state key of %d bytes is not a valid KV key: %w", len(key), ids.ErrInvalidID)
	}
	return nil
}
