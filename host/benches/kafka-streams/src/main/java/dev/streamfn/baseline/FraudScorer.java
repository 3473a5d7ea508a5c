package dev.streamfn.baseline;

import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.Stores;

/**
 * The fraud scorer as a Kafka Streams application: `customer-profiles` as a KTable, each
 * `transactions` record left-joined with it, then scored against the customer's history in a
 * persistent (RocksDB) store; alerts go to the output topic.
 *
 * <pre>FraudScorer BROKERS APPLICATION_ID GUARANTEE THREADS OUTPUT_TOPIC STATE_DIR</pre>
 *
 * GUARANTEE is exactly_once_v2 or at_least_once; commits every 100 ms either way. It runs
 * until it is sent SIGTERM, and prints "running" once all its tasks run.
 */
public final class FraudScorer {
    public static void main(String[] args) throws InterruptedException {
        if (args.length != 6) {
            System.err.println("usage: FraudScorer BROKERS APPLICATION_ID GUARANTEE THREADS OUTPUT_TOPIC STATE_DIR");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, args[2]);
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.parseInt(args[3]));
        props.put(StreamsConfig.STATE_DIR_CONFIG, args[5]);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

        StreamsBuilder builder = new StreamsBuilder();
        KTable<String, String> profiles = builder.table(
                "customer-profiles",
                Consumed.with(Serdes.String(), Serdes.String()),
                Materialized.as("profiles"));
        builder.addStateStore(Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore(Scorer.STORE), Serdes.String(), Serdes.ByteArray()));
        builder.stream("transactions", Consumed.with(Serdes.String(), Serdes.String()))
                .leftJoin(profiles, Scorer.Joined::new)
                .processValues(() -> new Scorer(0.7), Scorer.STORE)
                .to(args[4], Produced.with(Serdes.String(), Serdes.String()));

        KafkaStreams streams = new KafkaStreams(builder.build(props), props);
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING) {
                System.out.println("running");
                System.out.flush();
            }
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                stopped.countDown();
            }
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close();
            stopped.countDown();
        }));
        streams.start();
        stopped.await();
        System.exit(streams.state() == KafkaStreams.State.ERROR ? 1 : 0);
    }
}
