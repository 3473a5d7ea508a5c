// Unit tests of the Go fraud scorer, run natively on the SDK's in-memory host; they
// mirror the Rust version's tests.

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"streamfn.dev/streamfn"
	"streamfn.dev/streamfn/streamfntest"
)

const (
	t0     = 1_767_225_600_000
	minute = 60_000
)

func mustHandle(t *testing.T, host *streamfntest.Host, topic, key string, value any, ts int64) {
	t.Helper()
	raw, err := json.Marshal(value)
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Handle(Handle, host.Event(topic, key, string(raw), ts)); err != nil {
		t.Fatalf("%s %s: %v", topic, raw, err)
	}
}

func addProfile(t *testing.T, host *streamfntest.Host, customer, home, tier string, ageDays int) {
	mustHandle(t, host, profilesTopic, customer, map[string]any{
		"customer_id": customer, "home_country": home, "risk_tier": tier, "account_age_days": ageDays,
	}, t0)
}

func pay(t *testing.T, host *streamfntest.Host, id, customer string, amount float64, merchant, country string, ts int64) {
	mustHandle(t, host, transactionsTopic, customer, map[string]any{
		"id": id, "customer_id": customer, "amount": amount, "currency": "EUR",
		"merchant": merchant, "merchant_category": "grocery", "country": country, "timestamp_ms": ts,
	}, ts)
}

// regular is a steady customer: 20 purchases of 30–50 EUR at home, at three shops, every
// 4 minutes.
func regular(t *testing.T, host *streamfntest.Host, customer string) int64 {
	addProfile(t, host, customer, "DE", "low", 1200)
	ts := int64(t0)
	for i := range 20 {
		ts += 4 * minute
		pay(t, host, fmt.Sprintf("tx-%s-%d", customer, i), customer, float64(30+i*7%20), fmt.Sprintf("m-%d", i%3), "DE", ts)
	}
	return ts
}

type sentAlert struct {
	TransactionID string   `json:"transaction_id"`
	CustomerID    string   `json:"customer_id"`
	Amount        float64  `json:"amount"`
	Score         float64  `json:"score"`
	Factors       []string `json:"factors"`
	TimestampMs   int64    `json:"timestamp_ms"`
}

func alerts(t *testing.T, host *streamfntest.Host) []sentAlert {
	t.Helper()
	var sent []sentAlert
	if err := host.OutputsJSON(alertsTopic, &sent); err != nil {
		t.Fatal(err)
	}
	return sent
}

func stateOf(t *testing.T, host *streamfntest.Host, customerID string) customer {
	t.Helper()
	raw, ok := host.State(customerKey(customerID))
	if !ok {
		t.Fatalf("no state for %s", customerID)
	}
	c, err := decodeCustomer(raw)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNormalTrafficRaisesNoAlert(t *testing.T) {
	host := streamfntest.NewHost()
	regular(t, host, "c-1")
	if sent := alerts(t, host); len(sent) != 0 {
		t.Errorf("alerts %v", sent)
	}
	c := stateOf(t, host, "c-1")
	if c.history.count != 20 || math.Abs(c.history.mean-39.5) > 1e-9 {
		t.Errorf("history %+v", c.history)
	}
}

func TestAccountTakeoverIsAlertedWithItsFactors(t *testing.T) {
	host := streamfntest.NewHost()
	ts := regular(t, host, "c-1")
	pay(t, host, "tx-ato", "c-1", 520, "m-999", "BR", ts+minute)
	sent := alerts(t, host)
	if len(sent) != 1 {
		t.Fatalf("alerts %v", sent)
	}
	got := sent[0]
	want := sentAlert{"tx-ato", "c-1", 520, 0.8, []string{"amount_spike", "new_country", "new_merchant"}, ts + minute}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alert %+v, want %+v", got, want)
	}
	output := host.Outputs()[0]
	wantJSON := fmt.Sprintf(`{"transaction_id":"tx-ato","customer_id":"c-1","amount":520.0,"score":0.8,"factors":["amount_spike","new_country","new_merchant"],"timestamp_ms":%d}`, ts+minute)
	if string(output.Value) != wantJSON || string(output.Key) != "c-1" {
		t.Errorf("record %s %s, want the Rust version's %s", output.Key, output.Value, wantJSON)
	}
}

func TestCardTestingIsAlertedFromTheSecondProbe(t *testing.T) {
	host := streamfntest.NewHost()
	ts := regular(t, host, "c-1")
	for i := range 6 {
		pay(t, host, fmt.Sprintf("probe-%d", i), "c-1", 1, fmt.Sprintf("m-web-%d", i), "DE", ts+int64(i)*10_000)
	}
	var ids []string
	sent := alerts(t, host)
	for _, a := range sent {
		ids = append(ids, a.TransactionID)
	}
	if fmt.Sprint(ids) != "[probe-1 probe-2 probe-3 probe-4 probe-5]" {
		t.Errorf("alerted %v", ids)
	}
	if !slices.Contains(sent[0].Factors, "card_testing") {
		t.Errorf("factors %v", sent[0].Factors)
	}
}

func TestABurstBeyondTheCustomersPaceAddsVelocity(t *testing.T) {
	host := streamfntest.NewHost().WithConfig("alert_threshold", "0.1")
	ts := regular(t, host, "c-1")
	for i := range 6 {
		pay(t, host, fmt.Sprintf("fast-%d", i), "c-1", 40, "m-1", "DE", ts+int64(i)*10_000)
	}
	// Two of the regular purchases are still in the window: the fourth fast one is the
	// sixth transaction in five minutes.
	var ids []string
	for _, a := range alerts(t, host) {
		ids = append(ids, a.TransactionID)
		if fmt.Sprint(a.Factors) != "[velocity]" || a.Score != wVelocity {
			t.Errorf("alert %+v", a)
		}
	}
	if fmt.Sprint(ids) != "[fast-3 fast-4 fast-5]" {
		t.Errorf("alerted %v", ids)
	}
}

func TestTheProfileJoinAddsRiskFactors(t *testing.T) {
	host := streamfntest.NewHost()
	addProfile(t, host, "c-2", "FR", "high", 12)
	pay(t, host, "tx-1", "c-2", 20, "m-1", "FR", t0+minute)
	pay(t, host, "tx-2", "c-2", 20, "m-2", "ES", t0+2*minute)
	if sent := alerts(t, host); len(sent) != 0 {
		t.Errorf("0.45 stays under 0.7: %v", sent)
	}

	host = streamfntest.NewHost().WithConfig("alert_threshold", "0.45")
	addProfile(t, host, "c-2", "FR", "high", 12)
	pay(t, host, "tx-2", "c-2", 20, "m-2", "ES", t0+2*minute)
	sent := alerts(t, host)
	if len(sent) != 1 || fmt.Sprint(sent[0].Factors) != "[new_country high_risk_tier new_account]" || sent[0].Score != 0.45 {
		t.Errorf("alerts %+v", sent)
	}
}

func TestAProfileAfterTransactionsKeepsTheHistory(t *testing.T) {
	host := streamfntest.NewHost()
	pay(t, host, "tx-1", "c-3", 20, "m-1", "IT", t0+minute)
	addProfile(t, host, "c-3", "IT", "medium", 400)
	c := stateOf(t, host, "c-3")
	if c.history.count != 1 || c.profile == nil || c.profile.riskTier != tierMedium {
		t.Errorf("customer %+v %+v", c.history, c.profile)
	}
}

func TestBadRecordsAndConfigAreRejectedWithoutEffects(t *testing.T) {
	host := streamfntest.NewHost()
	reject := func(topic, value string) {
		t.Helper()
		var failure *streamfn.Failure
		err := host.Handle(Handle, host.Event(topic, "c-1", value, t0))
		if !errors.As(err, &failure) || failure.Retry {
			t.Errorf("%s %s: want a reject, got %v", topic, value, err)
		}
	}
	reject(transactionsTopic, "not json")
	reject(transactionsTopic, `{"id":"tx-1"}`)
	reject(transactionsTopic, `{"id":"tx-1","customer_id":"c-1","amount":-1,"merchant":"m","country":"DE","timestamp_ms":1}`)
	reject(transactionsTopic, `{"id":"tx-1","customer_id":null,"amount":1,"merchant":"m","country":"DE","timestamp_ms":1}`)
	reject(profilesTopic, `{"customer_id":"c-1","home_country":"DE","risk_tier":"extreme","account_age_days":1}`)
	reject("payments", "{}")
	if host.StateLen() != 0 {
		t.Errorf("%d state keys", host.StateLen())
	}

	host = streamfntest.NewHost().WithConfig("alert_threshold", "high")
	err := host.Handle(Handle, host.Event(transactionsTopic, "c-1",
		`{"id":"tx-1","customer_id":"c-1","amount":1.0,"merchant":"m","country":"DE","timestamp_ms":1}`, t0))
	if err == nil || !strings.Contains(err.Error(), "alert_threshold") {
		t.Errorf("bad threshold: %v", err)
	}
}

func TestStatePerCustomerStaysBounded(t *testing.T) {
	host := streamfntest.NewHost()
	countries := []string{"DE", "FR", "NL", "ES", "IT", "AT", "BE", "PL", "CZ", "DK"}
	for i := range 500 {
		pay(t, host, fmt.Sprintf("tx-%d", i), "c-1", 10, fmt.Sprintf("m-%d", i), countries[i%10], t0+int64(i)*1000)
	}
	h := stateOf(t, host, "c-1").history
	if h.count != 500 || len(h.merchants) != maxMerchants || len(h.countries) != maxCountries || len(h.recent) != maxRecent {
		t.Errorf("count %d, %d merchants, %d countries, %d recent", h.count, len(h.merchants), len(h.countries), len(h.recent))
	}
	if host.StateLen() != 1 {
		t.Errorf("%d state keys", host.StateLen())
	}
}

func TestStateRoundTripsAndCorruptStateRejects(t *testing.T) {
	c := customer{
		profile: &profile{homeCountry: "DE", riskTier: tierHigh, accountAgeDays: 7},
		history: history{count: 3, mean: 12.5, m2: 0.25, firstMs: -5, lastMs: t0,
			recent: []recentTx{{t0, true}}, countries: []string{"DE", "FR"}, merchants: []uint32{1, 1 << 31}},
	}
	raw := c.appendBinary(nil)
	back, err := decodeCustomer(raw)
	if err != nil || fmt.Sprintf("%+v %+v", *back.profile, back.history) != fmt.Sprintf("%+v %+v", *c.profile, c.history) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	for n := range len(raw) {
		if _, err := decodeCustomer(raw[:n]); err == nil {
			t.Fatalf("a value cut to %d bytes decodes", n)
		}
	}
	host := streamfntest.NewHost()
	host.Set(customerKey("c-1"), []byte{9, 9, 9})
	if err := host.Handle(Handle, host.Event(profilesTopic, "c-1",
		`{"customer_id":"c-1","home_country":"DE","risk_tier":"low","account_age_days":1}`, t0)); err == nil {
		t.Error("corrupt state must reject")
	}
}

func TestNumbersAreWrittenAsSerdeJSONWritesThem(t *testing.T) {
	for value, want := range map[float64]string{
		520: "520.0", 0.8: "0.8", 1: "1.0", 0: "0.0", 36.56: "36.56", 0.001234: "0.001234",
		0.00001: "0.00001", 0.000001: "1e-6", 1.5e-7: "1.5e-7", 1e15: "1000000000000000.0",
		1e16: "1e16", 1.234e33: "1.234e33", 123456.789: "123456.789", -2.5: "-2.5",
		0.30000000000000004: "0.30000000000000004", 9007199254740993: "9007199254740992.0",
	} {
		if got := formatFloat(value); got != want {
			t.Errorf("%v: got %s, want %s", value, got, want)
		}
	}
}

// splitmix is the Rust scenario test's generator, so the traffic has the same shape.
type splitmix uint64

func (r *splitmix) next() uint64 {
	*r += 0x9E37_79B9_7F4A_7C15
	z := uint64(*r)
	z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9
	z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EB
	return z ^ (z >> 31)
}
func (r *splitmix) unit() float64         { return float64(r.next()>>11) / float64(uint64(1)<<53) }
func (r *splitmix) below(n uint64) uint64 { return r.next() % n }
func (r *splitmix) normal() float64 {
	u := 1 - r.unit()
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*r.unit())
}

type plantedTx struct {
	customer uint64
	amount   float64
	merchant string
	country  string
	ts       int64
	planted  bool
}

func traffic(seed uint64) []plantedTx {
	rng := splitmix(seed)
	var txs []plantedTx
	for customer := range uint64(60) {
		median := 15 + rng.unit()*100
		sigma := 0.35 + rng.unit()*0.3
		for range 50 {
			ts := t0 + int64(rng.below(120))*minute + int64(rng.below(60_000))
			var merchant string
			if rng.unit() < 0.06 {
				merchant = fmt.Sprintf("m-%d", 100+rng.below(300))
			} else {
				merchant = fmt.Sprintf("m-%d", (customer+rng.below(6))%100)
			}
			country := "DE"
			if rng.unit() < 0.01 {
				country = "FR"
			}
			amount := math.Round(median*math.Exp(sigma*rng.normal())*100) / 100
			txs = append(txs, plantedTx{customer, amount, merchant, country, ts, false})
		}
	}
	for _, victim := range []uint64{3, 17, 29, 41} {
		ts := t0 + 90*minute + int64(victim)*1000
		var sum float64
		var n int
		for _, tx := range txs {
			if tx.customer == victim && tx.ts < ts {
				sum += tx.amount
				n++
			}
		}
		txs = append(txs, plantedTx{victim, 10 * sum / float64(n), fmt.Sprintf("m-lux-%d", victim), "NG", ts, true})
	}
	for _, victim := range []uint64{8, 33} {
		start := int64(t0 + 100*minute)
		for probe := range int64(8) {
			amount := 0.5 + rng.unit()*2.5
			txs = append(txs, plantedTx{victim, amount, fmt.Sprintf("m-web-%d-%d", victim, probe), "DE", start + probe*12_000, true})
		}
	}
	sort.SliceStable(txs, func(i, j int) bool { return txs[i].ts < txs[j].ts })
	return txs
}

func TestPlantedFraudIsFoundAndNormalTrafficLeftAlone(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		host := streamfntest.NewHost()
		for customer := range 60 {
			addProfile(t, host, fmt.Sprintf("c-%d", customer), "DE", "low", 900)
		}
		planted := map[string]bool{}
		txs := traffic(seed)
		for i, tx := range txs {
			id := fmt.Sprintf("tx-%d", i)
			if tx.planted {
				planted[id] = true
			}
			pay(t, host, id, fmt.Sprintf("c-%d", tx.customer), tx.amount, tx.merchant, tx.country, tx.ts)
		}
		caught, falseAlerts := 0, 0
		for _, a := range alerts(t, host) {
			if planted[a.TransactionID] {
				caught++
			} else {
				falseAlerts++
			}
		}
		// Each burst's first probe looks like any new shop; the rest must be caught.
		if caught < len(planted)-2 || falseAlerts > 2 {
			t.Errorf("seed %d: caught %d of %d, %d false alerts in %d", seed, caught, len(planted), falseAlerts, len(txs))
		}
	}
}
