package dev.streamfn.baseline;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * One customer's transaction history, as guests/fraud-scorer keeps it: a running mean and
 * spread of amounts, the transactions of the last velocity window, and the most recently used
 * countries and merchants. Stored in a compact binary form.
 */
final class History {
    static final long VELOCITY_WINDOW_MS = 5 * 60_000L;
    static final int MAX_RECENT = 32;
    static final int MAX_MERCHANTS = 24;
    static final int MAX_COUNTRIES = 8;

    long count;
    double mean;
    double m2;
    long firstMs;
    long lastMs;
    /** Timestamps of the window's transactions, in order, beside whether each was a probe. */
    final List<Long> recentTs = new ArrayList<>();
    final List<Boolean> recentProbe = new ArrayList<>();
    /** Most recently used last. */
    final List<String> countries = new ArrayList<>();
    final List<Integer> merchants = new ArrayList<>();

    void record(long ts, double amount, String country, String merchant, boolean probe) {
        if (count == 0) {
            firstMs = ts;
            lastMs = ts;
        }
        firstMs = Math.min(firstMs, ts);
        lastMs = Math.max(lastMs, ts);
        count += 1;
        double delta = amount - mean;
        mean += delta / count;
        m2 += delta * (amount - mean);

        long since = lastMs - VELOCITY_WINDOW_MS;
        for (int i = recentTs.size() - 1; i >= 0; i--) {
            if (recentTs.get(i) <= since) {
                recentTs.remove(i);
                recentProbe.remove(i);
            }
        }
        if (ts > since) {
            int at = 0;
            while (at < recentTs.size() && recentTs.get(at) <= ts) {
                at++;
            }
            recentTs.add(at, ts);
            recentProbe.add(at, probe);
        }
        while (recentTs.size() > MAX_RECENT) {
            recentTs.remove(0);
            recentProbe.remove(0);
        }
        remember(countries, country, MAX_COUNTRIES);
        remember(merchants, merchantTag(merchant), MAX_MERCHANTS);
    }

    private static <T> void remember(List<T> list, T value, int cap) {
        int at = list.indexOf(value);
        if (at >= 0) {
            list.add(list.remove(at));
            return;
        }
        if (list.size() >= cap) {
            list.remove(0);
        }
        list.add(value);
    }

    /** A merchant id as a 32-bit FNV-1a hash of its UTF-8 bytes. */
    static int merchantTag(String merchant) {
        int hash = 0x811c9dc5;
        for (byte b : merchant.getBytes(StandardCharsets.UTF_8)) {
            hash = (hash ^ (b & 0xff)) * 0x01000193;
        }
        return hash;
    }

    byte[] toBytes() {
        int size = 8 * 5 + 4 + recentTs.size() * 9 + 4 + 4 + merchants.size() * 4;
        List<byte[]> names = new ArrayList<>();
        for (String c : countries) {
            byte[] b = c.getBytes(StandardCharsets.UTF_8);
            names.add(b);
            size += 4 + b.length;
        }
        ByteBuffer out = ByteBuffer.allocate(size);
        out.putLong(count).putDouble(mean).putDouble(m2).putLong(firstMs).putLong(lastMs);
        out.putInt(recentTs.size());
        for (int i = 0; i < recentTs.size(); i++) {
            out.putLong(recentTs.get(i)).put((byte) (recentProbe.get(i) ? 1 : 0));
        }
        out.putInt(names.size());
        for (byte[] b : names) {
            out.putInt(b.length).put(b);
        }
        out.putInt(merchants.size());
        for (int m : merchants) {
            out.putInt(m);
        }
        return out.array();
    }

    static History fromBytes(byte[] bytes) {
        History h = new History();
        if (bytes == null) {
            return h;
        }
        ByteBuffer in = ByteBuffer.wrap(bytes);
        h.count = in.getLong();
        h.mean = in.getDouble();
        h.m2 = in.getDouble();
        h.firstMs = in.getLong();
        h.lastMs = in.getLong();
        for (int n = in.getInt(); n > 0; n--) {
            h.recentTs.add(in.getLong());
            h.recentProbe.add(in.get() == 1);
        }
        for (int n = in.getInt(); n > 0; n--) {
            byte[] b = new byte[in.getInt()];
            in.get(b);
            h.countries.add(new String(b, StandardCharsets.UTF_8));
        }
        for (int n = in.getInt(); n > 0; n--) {
            h.merchants.add(in.getInt());
        }
        return h;
    }
}
