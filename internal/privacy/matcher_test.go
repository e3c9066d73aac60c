package privacy

import (
	"encoding/json"
	"reflect"
	"testing"
)

func defaults() *Matchers { return NewMatchers(Defaults) }

func TestWords(t *testing.T) {
	for in, want := range map[string][]string{
		"cardNumber":        {"card", "number"},
		"card_number":       {"card", "number"},
		"card-number":       {"card", "number"},
		"IPAddress":         {"ip", "address"},
		"billingZip_code":   {"billing", "zip", "code"},
		"address2":          {"address2"},
		"Social Security #": {"social", "security"},
	} {
		if got := Words(in); !reflect.DeepEqual(got, want) {
			t.Errorf("Words(%q) = %v, want %v", in, got, want)
		}
	}
}

// Every default matcher recognises its own name and each of its synonyms, in the three cases.
func TestDefaultsOnKeys(t *testing.T) {
	m := defaults()
	for id, r := range Defaults {
		for _, k := range append([]string{r.Name}, r.Synonyms...) {
			for _, form := range []string{k, camel(k), snake(k), kebab(k)} {
				got, ok := m.Key(form)
				if !ok || got.Classification != r.Classification {
					t.Errorf("%s: key %q: got %+v, want %s", id, form, got, r.Classification)
				}
			}
		}
	}
	// One of each class, with the matcher named.
	for key, want := range map[string]string{
		"ssn": "ssn", "password": "password", "creditCardNumber": "credit_card", "passport_number": "passport",
		"access_token": "token", "visa": "visa", "veteran_status": "veteran", "disability": "disability",
		"email": "email", "phoneNumber": "phone", "shipping_address": "address", "street": "street", "city": "city",
		"zip_code": "zipcode", "first_name": "name", "dateOfBirth": "birthdate", "gender": "gender", "race": "race",
		"ethnicity": "ethnicity", "religion": "religion", "citizenship": "citizenship", "ip": "ip", "macAddress": "mac",
		"salary": "salary", "driversLicense": "license", "identification": "identification", "certificate": "certificate",
		"serial_number": "serial", "photo": "photo", "sexual_orientation": "sexual_orientation", "medication": "medication",
		"allergies": "allergy", "medical_condition": "condition", "diagnosis": "diagnosis", "procedure": "procedure",
	} {
		got, ok := m.Key(key)
		if !ok || got.MatcherID != want {
			t.Errorf("key %q: matched %q (%v), want %q", key, got.MatcherID, ok, want)
		}
	}
	for _, key := range []string{"order_id", "price", "currency", "productName", "trace", "path", "title", "revenue", "username", "account_number"} {
		if got, ok := m.Key(key); ok {
			t.Errorf("key %q matched %+v, want nothing", key, got)
		}
	}
}

func TestSimilarKeys(t *testing.T) {
	m := defaults()
	for key, want := range map[string]string{
		"phone_num": "phone", "emails": "email", "emailAddr": "email", "creditCardNum": "credit_card",
		"passwords": "password", "birth_day": "birthdate", "ipAddress": "ip", "postalCodes": "zipcode",
	} {
		got, ok := m.Key(key)
		if !ok || got.MatcherID != want {
			t.Errorf("similar key %q: matched %q (%v), want %q", key, got.MatcherID, ok, want)
		}
	}
	if s := Similarity("phone_num", "phone number"); s <= similarity {
		t.Errorf("Similarity(phone_num, phone number) = %.2f, want > %.2f", s, similarity)
	}
	if s := Similarity("trace", "race"); s <= similarity {
		t.Errorf("Similarity(trace, race) = %.2f: the test below means nothing", s)
	}
	// Short synonyms match exactly only: "trace" is not "race".
	if got, ok := m.Key("trace"); ok {
		t.Errorf("trace matched %+v", got)
	}
	// An exact matcher does not take similar keys.
	exact := NewMatchers(map[string]Rule{"x": {Name: "Loyalty Number", Classification: Yellow, Target: OnKey, KeyMatch: Exact}})
	if _, ok := exact.Key("loyalty_numbers"); ok {
		t.Error("exact matcher took a similar key")
	}
	if _, ok := exact.Key("loyaltyNumber"); !ok {
		t.Error("exact matcher missed its key in camelCase")
	}
}

func TestDefaultsOnValues(t *testing.T) {
	m := defaults()
	for v, want := range map[any]string{
		"123-45-6789":                                  "ssn",
		"4111 1111 1111 1111":                          "credit_card",
		"4242-4242-4242-4242":                          "credit_card",
		json.Number("5555555555554444"):                "credit_card",
		"378282246310005":                              "credit_card",
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefg": "token",
		"jane@example.com":                             "email",
		"+1 415-555-0100":                              "phone",
		"(415) 555-0100":                               "phone",
		"+14155550100":                                 "phone",
		"192.168.1.20":                                 "ip",
		"00:1A:2b:3C:4d:5E":                            "mac",
	} {
		got, ok := m.Value(v)
		if !ok || got.MatcherID != want {
			t.Errorf("value %v: matched %q (%v), want %q", v, got.MatcherID, ok, want)
		}
	}
	for _, v := range []any{
		"4111 1111 1111 1112",           // fails the Luhn check
		json.Number("5555555555554445"), // fails the Luhn check
		"1234", "hello", "USD", "999.1.1.1", "jane@", true, 42.0, nil, map[string]any{"a": "jane@example.com"},
	} {
		if got, ok := m.Value(v); ok {
			t.Errorf("value %v matched %+v, want nothing", v, got)
		}
	}
}

func TestLuhn(t *testing.T) {
	for s, want := range map[string]bool{
		"4111111111111111": true, "4111111111111112": false, "79927398713": false, "6011 0009 9013 9424": true,
		"0000000000000": true, "12345678903": false, "abcd": false,
	} {
		if got := luhn(s); got != want {
			t.Errorf("luhn(%q) = %v, want %v", s, got, want)
		}
	}
}

// A field is what the more severe of its key and its value say.
func TestField(t *testing.T) {
	m := defaults()
	if got, _ := m.Field("notes", "4111111111111111"); got.Classification != Red {
		t.Errorf("card number in notes: %+v", got)
	}
	if got, _ := m.Field("email", "x"); got.MatcherID != "email" {
		t.Errorf("email key: %+v", got)
	}
	if _, ok := m.Field("notes", "hello"); ok {
		t.Error("notes: hello matched")
	}
}

func TestCustomMatcher(t *testing.T) {
	m := NewMatchers(map[string]Rule{
		"pm_1": {Name: "Member Code", Classification: Red, Target: OnValue, Pattern: `^MC-\d{6}$`},
		"pm_2": {Name: "Loyalty", Classification: Yellow, Target: OnKey, KeyMatch: Similar, Synonyms: []string{"loyalty number"}},
	})
	if got, ok := m.Value("MC-123456"); !ok || got.MatcherID != "pm_1" {
		t.Errorf("custom value: %+v", got)
	}
	if _, ok := m.Key("member_code"); ok {
		t.Error("a value matcher matched a key")
	}
	if got, ok := m.Key("loyaltyNumbers"); !ok || got.MatcherID != "pm_2" {
		t.Errorf("custom similar key: %+v", got)
	}
	if _, err := compile("bad", Rule{Name: "x", Target: OnValue, Pattern: "(["}); err == nil {
		t.Error("bad pattern compiled")
	}
}

func camel(s string) string {
	w := Words(s)
	out := w[0]
	for _, x := range w[1:] {
		out += string(x[0]-'a'+'A') + x[1:]
	}
	return out
}

func snake(s string) string { return join(Words(s), "_") }
func kebab(s string) string { return join(Words(s), "-") }

func join(w []string, sep string) string {
	out := ""
	for i, x := range w {
		if i > 0 {
			out += sep
		}
		out += x
	}
	return out
}
