// Kafka's own ScramDelta (the shipped kafka-metadata jar) replaying what a restarted node replays
// from its metadata log: SCRAM users added, some of them deleted, from an empty image. Run with
// Java's source launcher: java -cp 'KAFKA/libs/*' ScramDeltaWalk GUARD SEED ROUNDS
// Prints one line: "rounds=N lost_with_guard=A lost_without_guard=B", a round being lost when
// the image it builds does not hold exactly the users left (tests/unit/test_scram_guard.py).
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.kafka.common.metadata.RemoveUserScramCredentialRecord;
import org.apache.kafka.common.metadata.UserScramCredentialRecord;
import org.apache.kafka.image.ScramDelta;
import org.apache.kafka.image.ScramImage;

public class ScramDeltaWalk {
    static UserScramCredentialRecord add(String name, byte mechanism) {
        return new UserScramCredentialRecord().setName(name).setMechanism(mechanism)
            .setSalt(new byte[] {1, 2, 3}).setStoredKey(new byte[64]).setServerKey(new byte[64])
            .setIterations(4096);
    }

    static int users(ScramImage image) {
        int n = 0;
        for (Map<String, ?> m : image.mechanisms().values()) n += m.size();
        return n;
    }

    public static void main(String[] args) {
        String guard = args[0];
        Random random = new Random(Long.parseLong(args[1]));
        int rounds = Integer.parseInt(args[2]);
        int lostWith = 0, lostWithout = 0;
        for (int r = 0; r < rounds; r++) {
            // 1 to 3000 users over both mechanisms (1: SCRAM-SHA-256, 2: SCRAM-SHA-512), the
            // first ones as a format writes them, then 1 to all of them deleted, in random order.
            int count = 1 + random.nextInt(random.nextBoolean() ? 12 : 3000);
            List<String> names = new ArrayList<>();
            List<Byte> mechanisms = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                names.add(random.nextBoolean() ? "user-" + Long.toHexString(random.nextLong())
                                               : "u" + random.nextInt(1 << 20));
                mechanisms.add((byte) (1 + random.nextInt(2)));
            }
            int deleted = 1 + random.nextInt(count);
            List<Integer> order = new ArrayList<>();
            for (int i = 0; i < count; i++) order.add(i);
            java.util.Collections.shuffle(order, random);
            for (int withGuard = 0; withGuard < 2; withGuard++) {
                ScramDelta delta = new ScramDelta(ScramImage.EMPTY);
                if (withGuard == 1) {
                    delta.replay(add(guard, (byte) 2));
                    delta.replay(add(guard, (byte) 1));
                }
                for (int i = 0; i < count; i++) delta.replay(add(names.get(i), mechanisms.get(i)));
                java.util.Set<String> gone = new java.util.HashSet<>();
                for (int k = 0; k < deleted; k++) {
                    int i = order.get(k);
                    delta.replay(new RemoveUserScramCredentialRecord().setName(names.get(i))
                        .setMechanism(mechanisms.get(i)));
                    gone.add(mechanisms.get(i) + "/" + names.get(i));
                }
                java.util.Set<String> left = new java.util.HashSet<>();
                for (int i = 0; i < count; i++) {
                    String key = mechanisms.get(i) + "/" + names.get(i);
                    if (!gone.contains(key)) left.add(key);
                }
                int want = left.size() + (withGuard == 1 ? 2 : 0);
                if (users(delta.apply()) != want) {
                    if (withGuard == 1) lostWith++; else lostWithout++;
                }
            }
        }
        System.out.println("rounds=" + rounds + " lost_with_guard=" + lostWith + " lost_without_guard=" + lostWithout);
    }
}
