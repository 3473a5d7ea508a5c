package dev.streamfn.baseline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * Scores each transaction, joined with its customer's profile, against the customer's history
 * in the {@code history} store, with the factors and weights of guests/fraud-scorer, and
 * forwards an alert (JSON) when the score reaches the threshold.
 */
final class Scorer implements FixedKeyProcessor<String, Scorer.Joined, String> {
    /** A transaction's JSON and its customer's profile's JSON, or null without a profile. */
    record Joined(String transaction, String profile) {}

    static final String STORE = "history";

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int VELOCITY_MIN_COUNT = 6;
    private static final double VELOCITY_PACE_FACTOR = 3.0;
    private static final long MIN_HISTORY = 5;
    private static final long MIN_AMOUNT_HISTORY = 10;
    private static final int CARD_TESTING_PROBES = 2;
    private static final double PROBE_MAX_AMOUNT = 5.0;
    private static final double PROBE_MAX_SHARE = 0.5;
    private static final double MIN_DEVIATION_SHARE = 0.1;
    private static final double SPIKE_RATIO = 3.0;
    private static final double EXTREME_RATIO = 8.0;
    private static final double SPIKE_Z = 3.0;
    private static final int NEW_ACCOUNT_DAYS = 30;
    private static final double W_VELOCITY = 0.15;
    private static final double W_CARD_TESTING = 0.65;
    private static final double W_AMOUNT_SPIKE = 0.2;
    private static final double W_AMOUNT_EXTREME = 0.45;
    private static final double W_NEW_COUNTRY = 0.25;
    private static final double W_NEW_MERCHANT = 0.1;
    private static final double W_HIGH_RISK_TIER = 0.1;
    private static final double W_NEW_ACCOUNT = 0.1;

    private final double threshold;
    private FixedKeyProcessorContext<String, String> context;
    private KeyValueStore<String, byte[]> store;

    Scorer(double threshold) {
        this.threshold = threshold;
    }

    @Override
    public void init(FixedKeyProcessorContext<String, String> context) {
        this.context = context;
        this.store = context.getStateStore(STORE);
    }

    @Override
    public void process(FixedKeyRecord<String, Joined> record) {
        JsonNode tx;
        JsonNode profile;
        try {
            tx = JSON.readTree(record.value().transaction());
            profile = record.value().profile() == null ? null : JSON.readTree(record.value().profile());
        } catch (Exception e) {
            return; // not a transaction: the Streamfn scorer dead-letters it
        }
        double amount = tx.path("amount").asDouble(Double.NaN);
        if (!Double.isFinite(amount) || amount < 0) {
            return;
        }
        String customerId = tx.path("customer_id").asText();
        long ts = tx.path("timestamp_ms").asLong();
        String merchant = tx.path("merchant").asText();
        String country = tx.path("country").asText();
        History history = History.fromBytes(store.get(record.key()));

        boolean experienced = history.count >= MIN_HISTORY;
        boolean newMerchant = experienced && !history.merchants.contains(History.merchantTag(merchant));
        boolean probe = newMerchant && amount < Math.min(PROBE_MAX_AMOUNT, PROBE_MAX_SHARE * history.mean);
        long since = ts - History.VELOCITY_WINDOW_MS;
        int inWindow = 0;
        int probes = 1;
        for (int i = 0; i < history.recentTs.size(); i++) {
            if (history.recentTs.get(i) > since) {
                inWindow++;
                if (history.recentProbe.get(i)) {
                    probes++;
                }
            }
        }

        List<String> factors = new ArrayList<>();
        double score = 0;
        if (inWindow + 1 >= velocityLimit(history)) {
            factors.add("velocity");
            score += W_VELOCITY;
        }
        if (probe && probes >= CARD_TESTING_PROBES) {
            factors.add("card_testing");
            score += W_CARD_TESTING;
        }
        double ratio = amountRatio(history, amount);
        if (ratio >= EXTREME_RATIO) {
            factors.add("amount_spike");
            score += W_AMOUNT_EXTREME;
        } else if (ratio >= SPIKE_RATIO) {
            factors.add("amount_spike");
            score += W_AMOUNT_SPIKE;
        }
        boolean newCountry = !history.countries.contains(country)
                && (profile != null ? !profile.path("home_country").asText().equals(country) : experienced);
        if (newCountry) {
            factors.add("new_country");
            score += W_NEW_COUNTRY;
        }
        if (newMerchant) {
            factors.add("new_merchant");
            score += W_NEW_MERCHANT;
        }
        if (profile != null) {
            if (profile.path("risk_tier").asText().equals("high")) {
                factors.add("high_risk_tier");
                score += W_HIGH_RISK_TIER;
            }
            if (profile.path("account_age_days").asInt() < NEW_ACCOUNT_DAYS) {
                factors.add("new_account");
                score += W_NEW_ACCOUNT;
            }
        }
        score = Math.round(Math.min(score, 1.0) * 1000.0) / 1000.0;

        if (score >= threshold) {
            ObjectNode alert = JSON.createObjectNode();
            alert.put("transaction_id", tx.path("id").asText());
            alert.put("customer_id", customerId);
            alert.put("amount", amount);
            alert.put("score", score);
            factors.forEach(alert.putArray("factors")::add);
            alert.put("timestamp_ms", ts);
            context.forward(record.withValue(alert.toString()));
        }
        history.record(ts, amount, country, merchant, probe);
        store.put(record.key(), history.toBytes());
    }

    /** Transactions within the velocity window that make a burst for this customer. */
    private static int velocityLimit(History h) {
        long span = h.lastMs - h.firstMs;
        if (h.count < MIN_HISTORY || span < History.VELOCITY_WINDOW_MS) {
            return VELOCITY_MIN_COUNT;
        }
        double usual = (double) h.count * (double) History.VELOCITY_WINDOW_MS / (double) span;
        return Math.max(VELOCITY_MIN_COUNT, (int) Math.ceil(VELOCITY_PACE_FACTOR * usual));
    }

    /** How many times the mean `amount` is when it is far outside the usual spread, else 0. */
    private static double amountRatio(History h, double amount) {
        if (h.count < MIN_AMOUNT_HISTORY || h.mean <= 0) {
            return 0;
        }
        double deviation = Math.sqrt(h.m2 / (double) (h.count - 1));
        double z = (amount - h.mean) / Math.max(deviation, MIN_DEVIATION_SHARE * h.mean);
        return z >= SPIKE_Z ? amount / h.mean : 0;
    }
}
