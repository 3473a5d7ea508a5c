// fraud-scorer: scores every card transaction against its customer's own history and
// profile, and sends the suspicious ones to `fraud-alerts`. A port of the Rust function in
// guests/fraud-scorer: same topics, config, factors, weights and alerts.
//
// Inputs are `transactions` and `customer-profiles`, both keyed by customer id and
// co-partitioned, so a customer's profile (the table side of the join) and history live in
// the partition state next to their transactions: one state read and one write per
// transaction. It is a scorer, not a case manager: it never blocks a payment or remembers
// alerts it sent.

package main

import (
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"streamfn.dev/streamfn"
)

const (
	transactionsTopic = "transactions"
	profilesTopic     = "customer-profiles"
	alertsTopic       = "fraud-alerts"
)

// defaultAlertThreshold is the score at or above which a transaction is alerted, unless
// config `alert_threshold` says otherwise.
const defaultAlertThreshold = 0.7

const (
	// velocityWindowMs is how far back the velocity and card-testing factors look.
	velocityWindowMs = 5 * 60_000
	// velocityMinCount transactions in the window count as a burst, however slow the
	// customer's pace...
	velocityMinCount = 6
	// ...and velocityPaceFactor times their usual pace does for a busier customer.
	velocityPaceFactor = 3.0
	// minHistory transactions are needed before a customer's merchants and pace say
	// anything...
	minHistory = 5
	// ...and minAmountHistory before the spread of their amounts does.
	minAmountHistory = 10
	// cardTestingProbes probes (tiny amounts at new merchants) within the window look like
	// card testing.
	cardTestingProbes = 2
	// A probe is below probeMaxAmount currency units and below probeMaxShare of the
	// customer's mean.
	probeMaxAmount = 5.0
	probeMaxShare  = 0.5
	// minDeviationShare is the least deviation assumed, as a share of the mean.
	minDeviationShare = 0.1
	// An amount spike is spikeRatio times the mean (extremeRatio for the larger weight)
	// and spikeZ deviations above it.
	spikeRatio   = 3.0
	extremeRatio = 8.0
	spikeZ       = 3.0
	// newAccountDays: accounts younger than this are riskier.
	newAccountDays = 30
)

// Bounds of the per-customer state, so that it stays small whatever the traffic.
const (
	maxRecent    = 32
	maxMerchants = 24
	maxCountries = 8
)

// Factor weights. A score is the sum of the factors present, capped at 1. The
// card-testing and account-takeover patterns cross the default threshold on their own;
// every factor that normal traffic shows now and then (a new merchant, a trip abroad, a
// busy hour, a big purchase) stays below it alone and in the pairs that normal traffic
// makes.
const (
	wVelocity      = 0.15
	wCardTesting   = 0.65
	wAmountSpike   = 0.2
	wAmountExtreme = 0.45
	wNewCountry    = 0.25
	wNewMerchant   = 0.1
	wHighRiskTier  = 0.1
	wNewAccount    = 0.1
)

// transactionRecord is a `transactions` record. Pointers tell a missing or null field
// apart, which rejects the record as the Rust version's strict parsing does.
type transactionRecord struct {
	ID          *string  `json:"id"`
	CustomerID  *string  `json:"customer_id"`
	Amount      *float64 `json:"amount"`
	Merchant    *string  `json:"merchant"`
	Country     *string  `json:"country"`
	TimestampMs *int64   `json:"timestamp_ms"`
}

// profileRecord is a `customer-profiles` record.
type profileRecord struct {
	CustomerID     *string `json:"customer_id"`
	HomeCountry    *string `json:"home_country"`
	RiskTier       *string `json:"risk_tier"`
	AccountAgeDays *uint32 `json:"account_age_days"`
}

type riskTier uint8

const (
	tierLow riskTier = iota
	tierMedium
	tierHigh
)

var riskTiers = map[string]riskTier{"low": tierLow, "medium": tierMedium, "high": tierHigh}

type profile struct {
	homeCountry    string
	riskTier       riskTier
	accountAgeDays uint32
}

// customer is everything known about one customer: their profile and their transaction
// history, kept in state in a compact binary form (state.go): it is read and written on
// every transaction, and no other tool reads it.
type customer struct {
	profile *profile
	history history
}

type history struct {
	count uint64
	// Welford's running mean and sum of squared deviations of the amount.
	mean, m2        float64
	firstMs, lastMs int64
	// recent are the transactions of the last velocity window, by time.
	recent []recentTx
	// countries, most recently used last, so the least recent one is dropped first.
	countries []string
	// merchants by merchantTag, most recently used last.
	merchants []uint32
}

type recentTx struct {
	timestampMs int64
	// probe: was it a probe (a tiny amount at a new merchant).
	probe bool
}

// alert is what the scorer sends to `fraud-alerts`; fields in the Rust version's order,
// numbers written as it writes them.
type alert struct {
	TransactionID string    `json:"transaction_id"`
	CustomerID    string    `json:"customer_id"`
	Amount        jsonFloat `json:"amount"`
	Score         jsonFloat `json:"score"`
	Factors       []string  `json:"factors"`
	TimestampMs   int64     `json:"timestamp_ms"`
}

func init() {
	streamfn.OnEvent(Handle)
}

// Handle scores a transaction, or stores a customer profile, depending on the input topic.
func Handle(event *streamfn.Event, ctx *streamfn.Context) error {
	switch event.Topic {
	case transactionsTopic:
		return scoreTransaction(event, ctx)
	case profilesTopic:
		return storeProfile(event, ctx)
	default:
		return streamfn.Rejectf("fraud-scorer reads `%s` and `%s`, not `%s`", transactionsTopic, profilesTopic, event.Topic)
	}
}

func customerKey(customerID string) string {
	return "c/" + customerID
}

func storeProfile(event *streamfn.Event, ctx *streamfn.Context) error {
	var record profileRecord
	if err := event.JSON(&record); err != nil {
		return err
	}
	if record.CustomerID == nil || record.HomeCountry == nil || record.RiskTier == nil || record.AccountAgeDays == nil {
		return streamfn.Reject("profile lacks customer_id, home_country, risk_tier or account_age_days")
	}
	tier, ok := riskTiers[*record.RiskTier]
	if !ok {
		return streamfn.Rejectf("unknown risk_tier %q: expected low, medium or high", *record.RiskTier)
	}
	key := customerKey(*record.CustomerID)
	c, err := loadCustomer(ctx, key)
	if err != nil {
		return err
	}
	c.profile = &profile{homeCountry: *record.HomeCountry, riskTier: tier, accountAgeDays: *record.AccountAgeDays}
	ctx.Set(key, c.appendBinary(nil))
	return nil
}

func scoreTransaction(event *streamfn.Event, ctx *streamfn.Context) error {
	var raw transactionRecord
	if err := event.JSON(&raw); err != nil {
		return err
	}
	if raw.ID == nil || raw.CustomerID == nil || raw.Amount == nil || raw.Merchant == nil || raw.Country == nil || raw.TimestampMs == nil {
		return streamfn.Reject("transaction lacks id, customer_id, amount, merchant, country or timestamp_ms")
	}
	tx := transaction{id: *raw.ID, customerID: *raw.CustomerID, amount: *raw.Amount, merchant: *raw.Merchant, country: *raw.Country, timestampMs: *raw.TimestampMs}
	if math.IsInf(tx.amount, 0) || math.IsNaN(tx.amount) || tx.amount < 0 {
		return streamfn.Rejectf("transaction %s has amount %s", tx.id, strconv.FormatFloat(tx.amount, 'f', -1, 64))
	}
	threshold, err := ctx.ConfigFloat("alert_threshold", defaultAlertThreshold)
	if err != nil {
		return err
	}
	key := customerKey(tx.customerID)
	c, err := loadCustomer(ctx, key)
	if err != nil {
		return err
	}

	a := assess(&tx, &c)
	if a.score >= threshold {
		ctx.Info("alert for " + tx.customerID + " on " + tx.id + ": score " +
			strconv.FormatFloat(a.score, 'f', -1, 64) + " (" + strings.Join(a.factors, ", ") + ")")
		err := ctx.EmitJSON(alertsTopic, []byte(tx.customerID), alert{
			TransactionID: tx.id,
			CustomerID:    tx.customerID,
			Amount:        jsonFloat(tx.amount),
			Score:         jsonFloat(a.score),
			Factors:       a.factors,
			TimestampMs:   tx.timestampMs,
		})
		if err != nil {
			return err
		}
	}
	c.history.record(&tx, a.probe)
	ctx.Set(key, c.appendBinary(nil))
	return nil
}

// transaction is a parsed transaction with every field present.
type transaction struct {
	id, customerID, merchant, country string
	amount                            float64
	timestampMs                       int64
}

// assessment is the score of one transaction and why.
type assessment struct {
	score   float64
	factors []string
	// probe: a tiny amount at a new merchant, what a card tester does to see if a card
	// works.
	probe bool
}

func assess(tx *transaction, c *customer) assessment {
	h := &c.history
	experienced := h.count >= minHistory
	newMerchant := experienced && !slices.Contains(h.merchants, merchantTag(tx.merchant))
	probe := newMerchant && tx.amount < rustMin(probeMaxAmount, probeMaxShare*h.mean)
	since := tx.timestampMs - velocityWindowMs
	inWindow, probes := 0, 1
	for _, r := range h.recent {
		if r.timestampMs > since {
			inWindow++
			if r.probe {
				probes++
			}
		}
	}

	a := assessment{probe: probe}
	add := func(present bool, name string, weight float64) {
		if present {
			a.factors = append(a.factors, name)
			a.score += weight
		}
	}
	add(inWindow+1 >= h.velocityLimit(), "velocity", wVelocity)
	add(probe && probes >= cardTestingProbes, "card_testing", wCardTesting)
	if ratio, ok := h.amountRatio(tx.amount); ok {
		switch {
		case ratio >= extremeRatio:
			add(true, "amount_spike", wAmountExtreme)
		case ratio >= spikeRatio:
			add(true, "amount_spike", wAmountSpike)
		}
	}
	newCountry := !slices.Contains(h.countries, tx.country)
	if c.profile != nil {
		newCountry = newCountry && c.profile.homeCountry != tx.country
	} else {
		newCountry = newCountry && experienced
	}
	add(newCountry, "new_country", wNewCountry)
	add(newMerchant, "new_merchant", wNewMerchant)
	if c.profile != nil {
		add(c.profile.riskTier == tierHigh, "high_risk_tier", wHighRiskTier)
		add(c.profile.accountAgeDays < newAccountDays, "new_account", wNewAccount)
	}
	// Rounded, so that sums of weights compare with a threshold as written.
	a.score = math.Round(rustMin(a.score, 1)*1000) / 1000
	if a.factors == nil {
		a.factors = []string{}
	}
	return a
}

// velocityLimit is how many transactions within the velocity window make a burst for
// this customer.
func (h *history) velocityLimit() int {
	span := h.lastMs - h.firstMs
	if h.count < minHistory || span < velocityWindowMs {
		return velocityMinCount
	}
	usual := float64(h.count) * velocityWindowMs / float64(span)
	return max(velocityMinCount, int(math.Ceil(velocityPaceFactor*usual)))
}

// amountRatio is how many times the customer's mean amount is, when it is also far
// outside their usual spread (a customer whose amounts vary wildly does not spike by a
// ratio alone).
func (h *history) amountRatio(amount float64) (float64, bool) {
	if h.count < minAmountHistory || h.mean <= 0 {
		return 0, false
	}
	deviation := math.Sqrt(h.m2 / float64(h.count-1))
	// A customer who always pays the same would make any change look infinite.
	z := (amount - h.mean) / rustMax(deviation, minDeviationShare*h.mean)
	if z >= spikeZ {
		return amount / h.mean, true
	}
	return 0, false
}

func (h *history) record(tx *transaction, probe bool) {
	if h.count == 0 {
		h.firstMs = tx.timestampMs
		h.lastMs = tx.timestampMs
	}
	h.firstMs = min(h.firstMs, tx.timestampMs)
	h.lastMs = max(h.lastMs, tx.timestampMs)
	h.count++
	delta := tx.amount - h.mean
	h.mean += delta / float64(h.count)
	h.m2 += delta * (tx.amount - h.mean)

	since := h.lastMs - velocityWindowMs
	h.recent = slices.DeleteFunc(h.recent, func(r recentTx) bool { return r.timestampMs <= since })
	if tx.timestampMs > since {
		at := sort.Search(len(h.recent), func(i int) bool { return h.recent[i].timestampMs > tx.timestampMs })
		h.recent = slices.Insert(h.recent, at, recentTx{tx.timestampMs, probe})
	}
	if len(h.recent) > maxRecent {
		h.recent = slices.Delete(h.recent, 0, len(h.recent)-maxRecent)
	}
	h.countries = remember(h.countries, tx.country, maxCountries)
	h.merchants = remember(h.merchants, merchantTag(tx.merchant), maxMerchants)
}

// merchantTag is a merchant id as a 32-bit FNV-1a hash. A new merchant's tag matches one
// of the few dozen a customer's state remembers about once in a hundred million new
// merchants, and the match only hides that the merchant is new.
func merchantTag(merchant string) uint32 {
	hash := uint32(0x811c_9dc5)
	for i := 0; i < len(merchant); i++ {
		hash = (hash ^ uint32(merchant[i])) * 0x0100_0193
	}
	return hash
}

// remember marks value as the most recently used of list, dropping the least recent one
// when list would grow beyond limit.
func remember[T comparable](list []T, value T, limit int) []T {
	if at := slices.Index(list, value); at >= 0 {
		known := list[at]
		return append(slices.Delete(list, at, at+1), known)
	}
	if len(list) >= limit {
		list = slices.Delete(list, 0, 1)
	}
	return append(list, value)
}

// rustMin and rustMax are Rust's f64::min and f64::max, which ignore a NaN operand
// where Go's math.Min and math.Max return it, so that scores match the Rust version's.
func rustMin(a, b float64) float64 {
	if math.IsNaN(a) {
		return b
	}
	if math.IsNaN(b) {
		return a
	}
	return math.Min(a, b)
}

func rustMax(a, b float64) float64 {
	if math.IsNaN(a) {
		return b
	}
	if math.IsNaN(b) {
		return a
	}
	return math.Max(a, b)
}

// main is never called: the host calls Handle through the component's exports.
func main() {}
