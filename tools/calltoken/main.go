// Command calltoken prints the callback token for an order, signed with a
// secret, as the bridge puts it in the callback URL (for load tests and
// manual calls to the ingress).
//
//	go run ./tools/calltoken -secret s3cret -order ORD-1 [-shop lv-web]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
)

func main() {
	secret := flag.String("secret", "", "the CALLBACK_SECRET (its first secret signs)")
	order := flag.String("order", "", "order id")
	shop := flag.String("shop", "", "shop alias (default: the default shop)")
	flag.Parse()
	s, err := callbacktoken.New([]string{*secret})
	if err != nil || *order == "" {
		fmt.Fprintln(os.Stderr, "calltoken: -secret and -order are required", err)
		os.Exit(2)
	}
	fmt.Println(s.TokenFor(*shop, *order))
}
