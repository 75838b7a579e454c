use super::*;
use proptest::prelude::*;

// The reference: RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 transcribed over the entries
// themselves, slices and all, hashing with sha2 directly rather than with the module's
// functions.

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// k: the largest power of two smaller than n.
fn reference_k(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]).
fn reference_mth(d: &[Vec<u8>]) -> Hash {
    match d.len() {
        0 => sha256(&[]),
        1 => sha256(&[&[0x00], &d[0]]),
        n => {
            let k = reference_k(n);
            sha256(&[&[0x01], &reference_mth(&d[..k]), &reference_mth(&d[k..])])
        }
    }
}

/// PATH(m, D[n]).
fn reference_path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    let n = d.len();
    if n == 1 {
        return Vec::new();
    }
    let k = reference_k(n);
    if m < k {
        let mut path = reference_path(m, &d[..k]);
        path.push(reference_mth(&d[k..]));
        path
    } else {
        let mut path = reference_path(m - k, &d[k..]);
        path.push(reference_mth(&d[..k]));
        path
    }
}

/// PROOF(m, D[n]) for 0 < m < n.
fn reference_proof(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    reference_subproof(m, d, true)
}

/// SUBPROOF(m, D[n], b).
fn reference_subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b {
            Vec::new()
        } else {
            vec![reference_mth(d)]
        };
    }
    let k = reference_k(n);
    if m <= k {
        let mut proof = reference_subproof(m, &d[..k], b);
        proof.push(reference_mth(&d[k..]));
        proof
    } else {
        let mut proof = reference_subproof(m - k, &d[k..], false);
        proof.push(reference_mth(&d[..k]));
        proof
    }
}

/// Distinct entries, so that no two leaves (or subtrees) share a hash.
fn entries(n: usize, seed: u64) -> Vec<Vec<u8>> {
    (0..n as u64)
        .map(|i| [seed.to_be_bytes(), i.to_be_bytes()].concat())
        .collect()
}

fn tree_of(d: &[Vec<u8>]) -> MerkleTree {
    MerkleTree::from_leaves(d.iter().map(|entry| leaf_hash(entry)))
}

fn hex(text: &str) -> Hash {
    from_hex(text).unwrap()
}

#[test]
fn hashes_match_hand_computed_ones() {
    let [a, b, c]: [&[u8]; 3] = [b"a", b"b", b"c"];
    let la = sha256(&[&[0], a]);
    let lb = sha256(&[&[0], b]);
    let lc = sha256(&[&[0], c]);
    assert_eq!(leaf_hash(a), la);
    assert_eq!(node_hash(&la, &lb), sha256(&[&[1], &la, &lb]));
    let root = sha256(&[&[1], &sha256(&[&[1], &la, &lb]), &lc]);
    let tree = MerkleTree::from_leaves([la, lb, lc]);
    assert_eq!(tree.root(), root);
    assert_eq!(tree.root_at(2).unwrap(), sha256(&[&[1], &la, &lb]));
    assert_eq!(tree.root_at(1).unwrap(), la);
    assert_eq!(
        empty_root(),
        hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(tree.root_at(0).unwrap(), empty_root());
    assert_eq!(MerkleTree::new().root(), empty_root());
    assert_eq!(Accumulator::new().root(), empty_root());

    let event_hash = [0xab; 32];
    let mut entry = vec![0x00];
    entry.extend_from_slice(&5u64.to_be_bytes());
    entry.extend_from_slice(&event_hash);
    assert_eq!(event_leaf(5, &event_hash), sha256(&[&entry]));
    assert_ne!(event_leaf(5, &event_hash), event_leaf(6, &event_hash));
}

/// The RFC 6962 test vectors every Certificate Transparency implementation checks.
#[test]
fn matches_the_certificate_transparency_vectors() {
    let d: Vec<Vec<u8>> = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|text| {
        text.as_bytes()
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    })
    .collect();
    let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let tree = tree_of(&d);
    for (size, root) in (1..).zip(roots) {
        assert_eq!(tree.root_at(size).unwrap(), hex(root), "size {size}");
    }
    let paths = [
        (
            0,
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            [
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    for (index, path) in paths {
        let proof = tree.inclusion_proof(index, 8).unwrap();
        assert_eq!(proof.path, path.map(hex), "leaf {index}");
        proof
            .verify(&leaf_hash(&d[index as usize]), &tree.root())
            .unwrap();
    }
}

/// Roots, audit paths and consistency proofs equal the RFC's definitions for every tree
/// size up to 64, every leaf and every older size, and all of them verify.
#[test]
fn agrees_with_the_rfc_reference_up_to_64_leaves() {
    let d = entries(64, 1);
    let tree = tree_of(&d);
    let mut accumulator = Accumulator::new();
    for n in 0..=64usize {
        let root = tree.root_at(n as u64).unwrap();
        assert_eq!(root, reference_mth(&d[..n]), "root of size {n}");
        assert_eq!(accumulator.root(), root, "accumulated root of size {n}");
        assert_eq!(accumulator.len(), n as u64);
        assert_eq!(
            tree_of(&d[..n]).root(),
            root,
            "root of a tree of {n} leaves"
        );
        if n < 64 {
            accumulator.push(leaf_hash(&d[n]));
        }
        for m in 0..n {
            let proof = tree.inclusion_proof(m as u64, n as u64).unwrap();
            assert_eq!(proof.path, reference_path(m, &d[..n]), "PATH({m}, D[{n}])");
            assert_eq!(proof.path.len(), inclusion_path_len(m as u64, n as u64));
            proof.verify(&leaf_hash(&d[m]), &root).unwrap();
        }
        for m in 0..=n {
            let proof = tree.consistency_proof(m as u64, n as u64).unwrap();
            let expected = if m == 0 || m == n {
                Vec::new()
            } else {
                reference_proof(m, &d[..n])
            };
            assert_eq!(proof.path, expected, "PROOF({m}, D[{n}])");
            assert_eq!(proof.path.len(), consistency_path_len(m as u64, n as u64));
            proof
                .verify(&reference_mth(&d[..m]), &root)
                .unwrap_or_else(|error| panic!("PROOF({m}, D[{n}]): {error}"));
        }
    }
}

#[test]
fn refuses_sizes_and_indexes_out_of_range() {
    let tree = tree_of(&entries(5, 2));
    assert_eq!(
        tree.root_at(6),
        Err(ProofError::SizeBeyondLeaves {
            tree_size: 6,
            leaves: 5
        })
    );
    assert_eq!(
        tree.inclusion_proof(5, 5),
        Err(ProofError::IndexOutOfRange {
            leaf_index: 5,
            tree_size: 5
        })
    );
    assert_eq!(
        tree.inclusion_proof(0, 6),
        Err(ProofError::SizeBeyondLeaves {
            tree_size: 6,
            leaves: 5
        })
    );
    assert_eq!(
        tree.consistency_proof(4, 3),
        Err(ProofError::OldSizeExceedsNew {
            old_size: 4,
            new_size: 3
        })
    );
    assert!(matches!(
        tree.consistency_proof(2, 6),
        Err(ProofError::SizeBeyondLeaves { .. })
    ));

    let leaf = tree.leaves()[0];
    let empty = InclusionProof {
        leaf_index: 0,
        tree_size: 0,
        path: Vec::new(),
    };
    assert_eq!(
        empty.verify(&leaf, &empty_root()),
        Err(ProofError::IndexOutOfRange {
            leaf_index: 0,
            tree_size: 0
        })
    );
    let beyond = InclusionProof {
        leaf_index: 5,
        ..tree.inclusion_proof(4, 5).unwrap()
    };
    assert_eq!(
        beyond.verify(&tree.leaves()[4], &tree.root()),
        Err(ProofError::IndexOutOfRange {
            leaf_index: 5,
            tree_size: 5
        })
    );
}

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut flipped = *hash;
    flipped[bit / 8] ^= 1 << (bit % 8);
    flipped
}

/// Every single-bit change of every path hash is caught.
#[test]
fn a_flipped_bit_anywhere_in_a_path_is_refused() {
    let d = entries(17, 3);
    let tree = tree_of(&d);
    for n in 1..=17u64 {
        let root = tree.root_at(n).unwrap();
        for m in 0..n {
            let leaf = tree.leaves()[m as usize];
            let proof = tree.inclusion_proof(m, n).unwrap();
            for at in 0..proof.path.len() {
                for bit in 0..256 {
                    let mut forged = proof.clone();
                    forged.path[at] = flip(&proof.path[at], bit);
                    assert!(
                        matches!(
                            forged.verify(&leaf, &root),
                            Err(ProofError::RootMismatch { .. })
                        ),
                        "leaf {m} of {n}, hash {at}, bit {bit}"
                    );
                }
            }
            let old_root = tree.root_at(m).unwrap();
            let proof = tree.consistency_proof(m, n).unwrap();
            for at in 0..proof.path.len() {
                for bit in 0..256 {
                    let mut forged = proof.clone();
                    forged.path[at] = flip(&proof.path[at], bit);
                    assert!(
                        matches!(
                            forged.verify(&old_root, &root),
                            Err(ProofError::RootMismatch { .. })
                        ),
                        "{m} to {n}, hash {at}, bit {bit}"
                    );
                }
            }
        }
    }
}

/// Truncated or padded paths, other indexes, sizes, leaves and roots: all refused.
#[test]
fn forged_inclusion_proofs_are_refused() {
    let d = entries(65, 4);
    let tree = tree_of(&d);
    let stranger = leaf_hash(b"not in the log");
    for n in 1..=64u64 {
        let root = tree.root_at(n).unwrap();
        for m in 0..n {
            let leaf = tree.leaves()[m as usize];
            let proof = tree.inclusion_proof(m, n).unwrap();
            let refused = |forged: &InclusionProof, leaf: &Hash, root: &Hash, what: &str| {
                assert!(
                    forged.verify(leaf, root).is_err(),
                    "leaf {m} of {n}: {what} accepted"
                );
            };

            if let Some((_, shorter)) = proof.path.split_last() {
                let truncated = InclusionProof {
                    path: shorter.to_vec(),
                    ..proof.clone()
                };
                assert!(matches!(
                    truncated.verify(&leaf, &root),
                    Err(ProofError::WrongPathLength { .. })
                ));
            }
            for extra in [root, leaf, stranger] {
                let mut longer = proof.clone();
                longer.path.push(extra);
                assert!(matches!(
                    longer.verify(&leaf, &root),
                    Err(ProofError::WrongPathLength { .. })
                ));
                let mut longer = proof.clone();
                longer.path.insert(0, extra);
                refused(&longer, &leaf, &root, "a hash put in front");
            }
            for index in [m.wrapping_sub(1), m + 1, m ^ 1, n] {
                let moved = InclusionProof {
                    leaf_index: index,
                    ..proof.clone()
                };
                refused(&moved, &leaf, &root, "another index");
            }
            // A size off by one, against the root trusted for that size.
            for size in [n - 1, n + 1] {
                let resized = InclusionProof {
                    tree_size: size,
                    ..proof.clone()
                };
                let trusted = tree.root_at(size).unwrap();
                refused(&resized, &leaf, &trusted, "a size off by one");
            }
            let others = [0, m.saturating_sub(1), m + 1, n / 2, n - 1];
            for other in others.into_iter().filter(|&other| other != m && other < n) {
                let theirs = tree.inclusion_proof(other, n).unwrap();
                refused(&theirs, &leaf, &root, "another leaf's proof");
                let claimed = InclusionProof {
                    leaf_index: m,
                    ..theirs
                };
                refused(&claimed, &leaf, &root, "another leaf's path");
            }
            refused(&proof, &stranger, &root, "a leaf not in the log");
            for size in [0, 1, n - 1, n + 1, (2 * n).min(65), 65]
                .into_iter()
                .filter(|&size| size != n)
            {
                let other_root = tree.root_at(size).unwrap();
                refused(&proof, &leaf, &other_root, "another tree's root");
            }
            refused(&proof, &leaf, &stranger, "a made-up root");
        }
    }
}

#[test]
fn forged_consistency_proofs_are_refused() {
    let d = entries(65, 5);
    let tree = tree_of(&d);
    let stranger = leaf_hash(b"not a root");
    for n in 1..=64u64 {
        let new_root = tree.root_at(n).unwrap();
        for m in 0..=n {
            let old_root = tree.root_at(m).unwrap();
            let proof = tree.consistency_proof(m, n).unwrap();
            let refused = |forged: &ConsistencyProof, old: &Hash, new: &Hash, what: &str| {
                assert!(
                    forged.verify(old, new).is_err(),
                    "{m} to {n}: {what} accepted"
                );
            };

            if let Some((_, shorter)) = proof.path.split_last() {
                let truncated = ConsistencyProof {
                    path: shorter.to_vec(),
                    ..proof.clone()
                };
                assert!(matches!(
                    truncated.verify(&old_root, &new_root),
                    Err(ProofError::WrongPathLength { .. })
                ));
            }
            for extra in [old_root, new_root, stranger] {
                let mut longer = proof.clone();
                longer.path.push(extra);
                assert!(matches!(
                    longer.verify(&old_root, &new_root),
                    Err(ProofError::WrongPathLength { .. })
                ));
            }
            if m < n {
                let swapped = ConsistencyProof {
                    old_size: n,
                    new_size: m,
                    ..proof.clone()
                };
                assert_eq!(
                    swapped.verify(&new_root, &old_root),
                    Err(ProofError::OldSizeExceedsNew {
                        old_size: n,
                        new_size: m
                    })
                );
            }
            if m == 0 || m == n {
                continue;
            }
            // Both roots are bound (the class of immudb's GHSA-672p-m5jq-mrh8, where a
            // verifier accepted values the trusted roots did not pin down): a wrong one on
            // either side fails, also when the old tree is perfect and its root is not in
            // the path but the seed of both computations.
            for wrong in [stranger, tree.root_at(m - 1).unwrap(), new_root] {
                assert!(matches!(
                    proof.verify(&wrong, &new_root),
                    Err(ProofError::RootMismatch { .. })
                ));
            }
            for wrong in [stranger, tree.root_at(n + 1).unwrap(), old_root] {
                assert!(matches!(
                    proof.verify(&old_root, &wrong),
                    Err(ProofError::RootMismatch { .. })
                ));
            }
            // Sizes off by one, each against the roots trusted for the sizes claimed.
            for (old_size, new_size) in [(m - 1, n), (m + 1, n), (m, n - 1), (m, n + 1)] {
                if old_size == 0 || old_size >= new_size {
                    continue;
                }
                let resized = ConsistencyProof {
                    old_size,
                    new_size,
                    ..proof.clone()
                };
                refused(
                    &resized,
                    &tree.root_at(old_size).unwrap(),
                    &tree.root_at(new_size).unwrap(),
                    "sizes off by one",
                );
            }
            // Another pair's proof for these sizes.
            let others = [1, m - 1, m + 1, n - 1];
            for other in others
                .into_iter()
                .filter(|&other| other != m && 0 < other && other < n)
            {
                let theirs = ConsistencyProof {
                    old_size: m,
                    ..tree.consistency_proof(other, n).unwrap()
                };
                refused(&theirs, &old_root, &new_root, "another old size's path");
            }
            // An empty path is never a proof between different sizes.
            let empty = ConsistencyProof {
                path: Vec::new(),
                ..proof.clone()
            };
            assert!(matches!(
                empty.verify(&old_root, &new_root),
                Err(ProofError::WrongPathLength { actual: 0, .. })
            ));
        }
    }
}

#[test]
fn equal_and_empty_old_sizes_take_an_empty_path_only() {
    let tree = tree_of(&entries(8, 6));
    let root5 = tree.root_at(5).unwrap();
    let root6 = tree.root_at(6).unwrap();
    let same = ConsistencyProof {
        old_size: 5,
        new_size: 5,
        path: Vec::new(),
    };
    same.verify(&root5, &root5).unwrap();
    assert_eq!(
        same.verify(&root5, &root6),
        Err(ProofError::RootMismatch {
            tree_size: 5,
            computed: root5,
            trusted: root6
        })
    );
    let padded = ConsistencyProof {
        path: vec![root5],
        ..same
    };
    assert_eq!(
        padded.verify(&root5, &root5),
        Err(ProofError::WrongPathLength {
            expected: 0,
            actual: 1
        })
    );

    // An empty tree is a prefix of every tree, with nothing to show for it.
    let from_empty = tree.consistency_proof(0, 6).unwrap();
    assert!(from_empty.path.is_empty());
    from_empty.verify(&empty_root(), &root6).unwrap();
    let padded = ConsistencyProof {
        path: vec![root6],
        ..from_empty
    };
    assert!(matches!(
        padded.verify(&empty_root(), &root6),
        Err(ProofError::WrongPathLength { expected: 0, .. })
    ));
}

#[test]
fn errors_say_what_failed() {
    let tree = tree_of(&entries(6, 7));
    let proof = tree.inclusion_proof(2, 6).unwrap();
    let wrong = [0x11; 32];
    let error = proof.verify(&tree.leaves()[2], &wrong).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "root mismatch for tree size 6: the proof computes {} but the trusted root is {}",
            to_hex(&tree.root()),
            "11".repeat(32)
        )
    );
    let short = InclusionProof {
        path: proof.path[..1].to_vec(),
        ..proof
    };
    assert_eq!(
        short
            .verify(&tree.leaves()[2], &tree.root())
            .unwrap_err()
            .to_string(),
        "wrong proof path length: expected 3 hashes, got 1"
    );
    assert_eq!(
        tree.inclusion_proof(7, 6).unwrap_err().to_string(),
        "leaf index 7 is out of range for a tree of size 6"
    );
    assert_eq!(
        tree.root_at(9).unwrap_err().to_string(),
        "tree size 9 exceeds the 6 leaves held"
    );
    assert_eq!(
        tree.consistency_proof(4, 2).unwrap_err().to_string(),
        "old tree size 4 is larger than new tree size 2"
    );
}

#[test]
fn proofs_serialize_with_hex_hashes() {
    let tree = tree_of(&entries(7, 8));
    let proof = tree.inclusion_proof(3, 7).unwrap();
    let json = serde_json::to_value(&proof).unwrap();
    assert_eq!(json["leaf_index"], 3);
    assert_eq!(json["tree_size"], 7);
    assert_eq!(json["path"][0], to_hex(&proof.path[0]));
    assert_eq!(json["path"].as_array().unwrap().len(), proof.path.len());
    let back: InclusionProof = serde_json::from_value(json).unwrap();
    assert_eq!(back, proof);

    let proof = tree.consistency_proof(3, 7).unwrap();
    let text = serde_json::to_string(&proof).unwrap();
    assert_eq!(
        serde_json::from_str::<ConsistencyProof>(&text).unwrap(),
        proof
    );
    // Upper case reads too; anything but 64 hex digits does not.
    let upper = text.replace(
        &to_hex(&proof.path[0]),
        &to_hex(&proof.path[0]).to_uppercase(),
    );
    assert_eq!(
        serde_json::from_str::<ConsistencyProof>(&upper).unwrap(),
        proof
    );
    for bad in [
        r#"{"old_size":1,"new_size":2,"path":["00"]}"#.to_owned(),
        format!(
            r#"{{"old_size":1,"new_size":2,"path":["{}zz"]}}"#,
            "0".repeat(62)
        ),
        format!(
            r#"{{"old_size":1,"new_size":2,"path":["{}"],"x":1}}"#,
            "0".repeat(64)
        ),
    ] {
        assert!(
            serde_json::from_str::<ConsistencyProof>(&bad).is_err(),
            "{bad}"
        );
    }
}

/// A million events: the tree, the streaming accumulator and the proofs agree.
#[test]
fn a_million_leaves() {
    const N: u64 = 1_000_000;
    let mut tree = MerkleTree::with_capacity(N as usize);
    let mut accumulator = Accumulator::new();
    for position in 1..=N {
        // Any 32 bytes stand for a leaf hash; hashing them too would only slow the test.
        let mut leaf = [0x5a; 32];
        leaf[..8].copy_from_slice(&position.to_be_bytes());
        tree.push(leaf);
        accumulator.push(leaf);
    }
    assert_eq!(tree.len(), N);
    let root = tree.root();
    assert_eq!(accumulator.root(), root);
    for index in [0, 1, 524_287, 524_288, N / 2, N - 2, N - 1] {
        let proof = tree.inclusion_proof(index, N).unwrap();
        assert!(proof.path.len() <= 20);
        assert_eq!(proof.path.len(), inclusion_path_len(index, N));
        proof.verify(&tree.leaves()[index as usize], &root).unwrap();
    }
    for old in [1, 2, 3, 524_288, 524_289, 999_999] {
        let proof = tree.consistency_proof(old, N).unwrap();
        proof.verify(&tree.root_at(old).unwrap(), &root).unwrap();
    }
}

fn arbitrary_tree() -> impl Strategy<Value = (u64, usize)> {
    (any::<u64>(), 1usize..3000)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random sizes, indexes and older sizes agree with the reference and verify; a random
    /// flipped bit does not.
    #[test]
    fn random_trees_agree_with_the_reference(
        (seed, n) in arbitrary_tree(),
        index in any::<prop::sample::Index>(),
        old in any::<prop::sample::Index>(),
        bit in 0usize..256,
        at in any::<prop::sample::Index>(),
    ) {
        let d = entries(n, seed);
        let tree = tree_of(&d);
        let root = reference_mth(&d);
        prop_assert_eq!(tree.root(), root);
        let mut accumulator = Accumulator::new();
        tree.leaves().iter().for_each(|leaf| accumulator.push(*leaf));
        prop_assert_eq!(accumulator.root(), root);

        let m = index.index(n);
        let proof = tree.inclusion_proof(m as u64, n as u64).unwrap();
        prop_assert_eq!(&proof.path, &reference_path(m, &d));
        prop_assert_eq!(proof.verify(&leaf_hash(&d[m]), &root), Ok(()));
        if !proof.path.is_empty() {
            let mut forged = proof.clone();
            let at = at.index(forged.path.len());
            forged.path[at] = flip(&forged.path[at], bit);
            prop_assert!(forged.verify(&leaf_hash(&d[m]), &root).is_err());
        }

        let m = old.index(n + 1);
        let proof = tree.consistency_proof(m as u64, n as u64).unwrap();
        if 0 < m && m < n {
            prop_assert_eq!(&proof.path, &reference_proof(m, &d));
        }
        let old_root = reference_mth(&d[..m]);
        prop_assert_eq!(proof.verify(&old_root, &root), Ok(()));
        if !proof.path.is_empty() {
            let mut forged = proof.clone();
            let at = at.index(forged.path.len());
            forged.path[at] = flip(&forged.path[at], bit);
            prop_assert!(forged.verify(&old_root, &root).is_err());
        }
    }
}
