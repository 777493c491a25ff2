package order

import (
	"reflect"
	"testing"
	"time"
)

// TestOrderDeepCopySharesNothing sets every field of an order, however
// deep, and checks that its DeepCopy is equal and shares no pointer, slice
// or map with it: the store hands these copies to concurrent handlers, and
// a field added to Order (or to what it holds) but not to DeepCopy fails
// here.
func TestOrderDeepCopySharesNothing(t *testing.T) {
	var o Order
	fillEveryField(t, reflect.ValueOf(&o).Elem(), "Order")
	c := o.DeepCopy()
	if !reflect.DeepEqual(o, c) {
		t.Fatalf("copy differs:\n%+v\n%+v", o, c)
	}
	sharedMemory(t, reflect.ValueOf(o), reflect.ValueOf(c), "Order")
	if (Order{}).DeepCopy().Placed != nil {
		t.Fatal("copy of an empty order has a placed order")
	}
}

// fillEveryField gives v and everything below it a non-zero value.
func fillEveryField(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillEveryField(t, v.Elem(), path)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				fillEveryField(t, v.Field(i), path+"."+f.Name)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fillEveryField(t, s.Index(i), path+"[]")
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fillEveryField(t, k, path+"{key}")
		fillEveryField(t, e, path+"{}")
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Interface: // what encoding/json decodes into an any
		v.Set(reflect.ValueOf(map[string]any{"list": []any{"s", map[string]any{"n": 1.0}}}))
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint8:
		v.SetUint('x')
	case reflect.Float64:
		v.SetFloat(1.5)
	default:
		t.Fatalf("%s: fillEveryField does not know kind %s", path, v.Kind())
	}
}

// sharedMemory reports every pointer, slice or map that a and b share.
func sharedMemory(t *testing.T, a, b reflect.Value, path string) {
	t.Helper()
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() {
			return
		}
		if a.Pointer() == b.Pointer() {
			t.Errorf("%s: the copy shares the pointer", path)
		}
		sharedMemory(t, a.Elem(), b.Elem(), path)
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			t.Errorf("%s: the copy shares the slice", path)
		}
		for i := range a.Len() {
			sharedMemory(t, a.Index(i), b.Index(i), path+"[]")
		}
	case reflect.Map:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			t.Errorf("%s: the copy shares the map", path)
		}
		for _, k := range a.MapKeys() {
			sharedMemory(t, a.MapIndex(k), b.MapIndex(k), path+"{}")
		}
	case reflect.Interface:
		if !a.IsNil() {
			sharedMemory(t, a.Elem(), b.Elem(), path)
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if f := a.Type().Field(i); f.IsExported() {
				sharedMemory(t, a.Field(i), b.Field(i), path+"."+f.Name)
			}
		}
	}
}
