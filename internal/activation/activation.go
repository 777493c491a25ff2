// Package activation names when the bridge activates a rental contract at
// Inbank: the activation policy (ACTIVATION_POLICY, or a shop's
// activationPolicy in the shops file), with its one parser.
package activation

import "fmt"

// Policy is when a granted rental's contract is activated.
type Policy string

// The policies.
const (
	OnDelivery Policy = "on-delivery" // when the device is delivered (device.delivered)
	OnShipment Policy = "on-shipment" // when it is shipped (device.shipped)
	Portal     Policy = "portal"      // never by API: the partner approves in Inbank's portal
)

// Parse reads a policy as configured; "" is not one (a caller with a
// default applies it first).
func Parse(s string) (Policy, error) {
	switch p := Policy(s); p {
	case OnDelivery, OnShipment, Portal:
		return p, nil
	}
	return "", fmt.Errorf("activation policy %q: want on-delivery, on-shipment or portal", s)
}

// Valid reports whether p is one of the policies.
func (p Policy) Valid() bool {
	_, err := Parse(string(p))
	return err == nil
}

// ByAPI reports whether the bridge activates contracts itself (a shipment
// or delivery event triggers it); under Portal the partner does.
func (p Policy) ByAPI() bool { return p == OnDelivery || p == OnShipment }
