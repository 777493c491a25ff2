package activation_test

import (
	"testing"

	"github.com/smartrent-bridge/bridge/internal/activation"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]activation.Policy{"on-delivery": activation.OnDelivery, "on-shipment": activation.OnShipment, "portal": activation.Portal} {
		if got, err := activation.Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "Portal", "on_delivery", "ondelivery", " portal"} {
		if got, err := activation.Parse(in); err == nil {
			t.Errorf("Parse(%q) = %q, want an error", in, got)
		}
	}
	if !activation.OnShipment.ByAPI() || activation.Portal.ByAPI() || activation.Policy("x").Valid() {
		t.Error("ByAPI or Valid wrong")
	}
}
