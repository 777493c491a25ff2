package inbankapi

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInvalidRequest is matched by every [*ValidationError].
var ErrInvalidRequest = errors.New("invalid inbank request")

// ValidationError says which field of a request is wrong. It is returned
// before anything is sent to Inbank.
type ValidationError struct {
	Field  string // JSON path of the field, e.g. "rentalApplicationData.assets[0].modelId"
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid inbank request: %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidRequest) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidRequest }

func invalid(field, reason string) error { return &ValidationError{Field: field, Reason: reason} }

func validPeriod(field string, p int) error {
	if !slices.Contains(Periods, p) {
		return invalid(field, fmt.Sprintf("must be one of 12, 24, 36, got %d", p))
	}
	return nil
}

func validAssetIdentifierType(field, t string) error {
	if t != AssetIdentifierIMEI && t != AssetIdentifierSerialNumber {
		return invalid(field, fmt.Sprintf("must be IMEI or SERIAL_NUMBER, got %q", t))
	}
	return nil
}

// ValidModelIdentifierType checks the identifier type of a rental-conditions
// request (a path parameter the client checks before sending).
func ValidModelIdentifierType(field, t string) error {
	if t != ModelIdentifierEAN && t != ModelIdentifierManufacturerProductCode {
		return invalid(field, fmt.Sprintf("must be EAN or MANUFACTURER_PRODUCT_CODE, got %q", t))
	}
	return nil
}

// Required checks that a request field or path parameter is not blank.
func Required(field, v string) error {
	if strings.TrimSpace(v) == "" {
		return invalid(field, "required")
	}
	return nil
}

func nonNegative(field string, v float64) error {
	if v < 0 {
		return invalid(field, "must not be negative")
	}
	return nil
}

func nonNegativePtr(field string, v *float64) error {
	if v == nil {
		return nil
	}
	return nonNegative(field, *v)
}

// Validate checks the calculation request as documented in 03: the period,
// exactly one hero device (MODEL_BASED with modelId, first) and complete
// CATEGORY_BASED assets.
func (r CalculationRequest) Validate() error {
	if err := validPeriod("period", r.Period); err != nil {
		return err
	}
	if len(r.Assets) == 0 {
		return invalid("assets", "at least the hero device is required")
	}
	heroes := 0
	for i, a := range r.Assets {
		f := fmt.Sprintf("assets[%d]", i)
		switch a.Type {
		case AssetModelBased:
			heroes++
			if i != 0 {
				return invalid(f+".type", "only the hero device (first asset) may be MODEL_BASED")
			}
			if err := Required(f+".modelId", a.ModelID); err != nil {
				return err
			}
		case AssetCategoryBased:
			if i == 0 {
				return invalid(f+".type", "the hero device must be MODEL_BASED")
			}
			if err := Required(f+".categoryCode", a.CategoryCode); err != nil {
				return err
			}
			if err := Required(f+".modelName", a.ModelName); err != nil {
				return err
			}
		default:
			return invalid(f+".type", fmt.Sprintf("must be MODEL_BASED or CATEGORY_BASED, got %q", a.Type))
		}
		if err := nonNegative(f+".netPrice", a.NetPrice); err != nil {
			return err
		}
		if err := nonNegativePtr(f+".grossPrice", a.GrossPrice); err != nil {
			return err
		}
	}
	if heroes != 1 {
		return invalid("assets", "exactly one hero device is required")
	}
	if err := nonNegativePtr("grossTradeInAmount", r.GrossTradeInAmount); err != nil {
		return err
	}
	return nonNegativePtr("grossCampaignDiscount", r.GrossCampaignDiscount)
}

// Validate checks the session request as documented in 04.
func (r SessionRequest) Validate() error {
	if err := Required("productCode", r.ProductCode); err != nil {
		return err
	}
	if r.Currency != "EUR" {
		return invalid("currency", fmt.Sprintf("must be EUR, got %q", r.Currency))
	}
	if err := Required("locale", r.Locale); err != nil {
		return err
	}
	if c := r.CustomerData; c != nil {
		for _, f := range []struct{ name, v string }{
			{"customerData.identityCode", c.IdentityCode},
			{"customerData.firstName", c.FirstName},
			{"customerData.lastName", c.LastName},
		} {
			if err := Required(f.name, f.v); err != nil {
				return err
			}
		}
		if c.Gender != "" && c.Gender != "m" && c.Gender != "f" {
			return invalid("customerData.gender", "must be m or f")
		}
	}
	if c := r.CustomerContactData; c != nil {
		if err := Required("customerContactData.email", c.Email); err != nil {
			return err
		}
		if err := Required("customerContactData.mobile", c.Mobile); err != nil {
			return err
		}
	}
	if err := Required("purchase.description", r.Purchase.Description); err != nil {
		return err
	}
	rad := r.RentalApplicationData
	if err := validPeriod("rentalApplicationData.period", rad.Period); err != nil {
		return err
	}
	if len(rad.Assets) == 0 {
		return invalid("rentalApplicationData.assets", "at least the hero device is required")
	}
	for i, a := range rad.Assets {
		f := fmt.Sprintf("rentalApplicationData.assets[%d]", i)
		typ := a.Type
		if typ == "" {
			typ = AssetCategoryBased // documented default
		}
		if i == 0 {
			if typ != AssetModelBased {
				return invalid(f+".type", "the hero device (first asset) must be MODEL_BASED")
			}
			if err := Required(f+".modelId", a.ModelID); err != nil {
				return err
			}
		} else {
			switch typ {
			case AssetModelBased:
				return invalid(f+".type", "only the hero device (first asset) may be MODEL_BASED")
			case AssetCategoryBased:
				if err := Required(f+".categoryCode", a.CategoryCode); err != nil {
					return err
				}
			default:
				return invalid(f+".type", fmt.Sprintf("must be MODEL_BASED or CATEGORY_BASED, got %q", a.Type))
			}
		}
		if err := Required(f+".modelName", a.ModelName); err != nil {
			return err
		}
		if err := nonNegative(f+".netPrice", a.NetPrice); err != nil {
			return err
		}
	}
	if err := nonNegativePtr("rentalApplicationData.grossTradeInAmount", rad.GrossTradeInAmount); err != nil {
		return err
	}
	if err := nonNegativePtr("rentalApplicationData.grossCampaignDiscount", rad.GrossCampaignDiscount); err != nil {
		return err
	}
	if u := r.PartnerURLs; u != nil {
		if err := Required("partnerUrls.returnUrl", u.ReturnURL); err != nil {
			return err
		}
		if err := Required("partnerUrls.cancelUrl", u.CancelURL); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the identifiers: at least one, each with a non-empty
// identifier of type IMEI or SERIAL_NUMBER.
func (r AssetIdentifiersRequest) Validate() error {
	if len(r.AssetIdentifiers) == 0 {
		return invalid("assetIdentifiers", "at least one identifier is required")
	}
	for i, a := range r.AssetIdentifiers {
		f := fmt.Sprintf("assetIdentifiers[%d]", i)
		if err := Required(f+".identifier", a.Identifier); err != nil {
			return err
		}
		if err := validAssetIdentifierType(f+".identifierType", a.IdentifierType); err != nil {
			return err
		}
	}
	return nil
}
