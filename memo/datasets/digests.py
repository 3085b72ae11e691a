"""The files a fresh build of each offline dataset writes: name -> {file: (size, SHA-256)}.

What a cached copy of it must hold (verify.py): its folder is checked against these, not
against its own checksums.json. tests/test_datasets.py builds every offline dataset and
compares; after changing a builder on purpose, that test prints the table to paste here.
"""

PINNED = {
    "moons": {
        "X.npy": (8128, "9b92b8298a13034974a54a263d565533c17dff6c23d19d85320496044774aa6e"),
        "y.npy": (8128, "ab9618273c6a9b9aed5d62bf7623479cb83156f0deaff88b36356056bb329412"),
    },
    "lines": {
        "X.npy": (288, "27e7d7fd7f950b48796dccdc70372c2e93b5a3af0d58ead545bef39975199b92"),
        "y.npy": (288, "faa9fbc1847ef6137709b8676c2e23983e3ba51ede621d8c530febca28eb08e0"),
    },
    "digits": {
        "X.npy": (460160, "c377fb575f26cd4b7c716dd405d46c15280d840f010c6bd73673fa4597f528de"),
        "y.npy": (14504, "0e1c5e26d7ec59f910975e2cd61b6b76bc67b4bfaa8a4233726a6038d8e62a2c"),
    },
    "mnist5k": {
        "X.npy": (12544128, "684af692bd5059be50b5f15ddbd58d0cf4cc270343fc8b09fc9798cc4117f53a"),
        "y.npy": (32128, "1bdead6ddb1ee2940e18148114224275e73dbae05c71b1babc9b4e2365d8a71b"),
        "X_test.npy": (3136128, "a28b60a5cf461d97b16cfb0ad1155366c38e54fc223a52222a3a8ce3c86f578f"),
        "y_test.npy": (8128, "6747cf57b12a8ed53d1d377cd68b4d489053583683e56cc93cc912c35e9ce03a"),
    },
    "moons_size_1000k": {
        "X.npy": (8000128, "5b56e2c292a034f61b7d24e8e00ebe402f1f29bf30389615539b52b0e14037e3"),
        "y.npy": (8000128, "5a2ca1359dc35008c37007237e84abbe75c71906e27b8d848ddaa07ab0d0eb5d"),
    },
    "mnist5k_1v9_size_10": {
        "X.npy": (251008, "c71ea377f867325129ee94c9766ba16cce1e67df454052364cc6dc4c7cfe8a35"),
        "y.npy": (768, "a95b3f61df57743d05b002424a44ca79f03cb469fdcffeb85b11a1c4d3aefb5d"),
        "X_test.npy": (627328, "195beb4e13f14df9113621fa9f282b723c4701cdb1e4551f356f0d4b48921f3b"),
        "y_test.npy": (1728, "c9b335c708d5ed248dd32aee0714f3c7cc5472fcf6b9e7931e67a39abcac053f"),
    },
    "mnist5k_1v9_size_20": {
        "X.npy": (501888, "60c07e3ac56c39787c475bf29580941686a5f033d2a20819ec6f05402bc2cd88"),
        "y.npy": (1408, "df8a8ae31525996a418095629370ac5a47d57bde31685501df5c3f4a4f43f43d"),
        "X_test.npy": (627328, "195beb4e13f14df9113621fa9f282b723c4701cdb1e4551f356f0d4b48921f3b"),
        "y_test.npy": (1728, "c9b335c708d5ed248dd32aee0714f3c7cc5472fcf6b9e7931e67a39abcac053f"),
    },
    "mnist5k_1v9_size_30": {
        "X.npy": (752768, "946654102df93a2bcb0540fedc92f2f375bf12c6895942e636e0f823c329a397"),
        "y.npy": (2048, "faf57d86d8f05c78ca6410bceb3e5448f2a480865f92b69c29117eebaf09f3fb"),
        "X_test.npy": (627328, "195beb4e13f14df9113621fa9f282b723c4701cdb1e4551f356f0d4b48921f3b"),
        "y_test.npy": (1728, "c9b335c708d5ed248dd32aee0714f3c7cc5472fcf6b9e7931e67a39abcac053f"),
    },
    "mnist5k_1v9_size_40": {
        "X.npy": (1003648, "f589b75d54a06b27f8a2ff1d9c0fac049be85547f86ea65219cf1708d2164cf1"),
        "y.npy": (2688, "7f320a8b75788d0d21cf47fa391eb9dadfa5148b1a851cd88f21456214480b00"),
        "X_test.npy": (627328, "195beb4e13f14df9113621fa9f282b723c4701cdb1e4551f356f0d4b48921f3b"),
        "y_test.npy": (1728, "c9b335c708d5ed248dd32aee0714f3c7cc5472fcf6b9e7931e67a39abcac053f"),
    },
    "mnist5k_1v9_size_50": {
        "X.npy": (1254528, "25c5a9a9d77a5136dd8417b51b7ca69e46bb6821b09a230a942c58869d8cc0b7"),
        "y.npy": (3328, "333e45b64f7a20491a954cd03e193c8bc87ace26f219b16d9cf631371bf1d768"),
        "X_test.npy": (627328, "195beb4e13f14df9113621fa9f282b723c4701cdb1e4551f356f0d4b48921f3b"),
        "y_test.npy": (1728, "c9b335c708d5ed248dd32aee0714f3c7cc5472fcf6b9e7931e67a39abcac053f"),
    },
    "mnist5k_1v9_size_60": {
        "X.npy": (1505408, "18eed9faf7ada58d2d5c4925149b745dd242819068f39af414da97a2ce94e0cc"),
        "y.npy": (3968, "2fe48ae6ae97b6e04b977e583f9cc1cf063e47e592061ad00d559d01944eec5d"),
        "X_test.npy": (627328, "195beb4e13f14df9113621fa9f282b723c4701cdb1e4551f356f0d4b48921f3b"),
        "y_test.npy": (1728, "c9b335c708d5ed248dd32aee0714f3c7cc5472fcf6b9e7931e67a39abcac053f"),
    },
    "mnist5k_1v9_size_70": {
        "X.npy": (1756288, "f2531ee06e3372d602cd64eaf130d2ebe811c366f92cfd56cf6ae6beca1fe19f"),
        "y.npy": (4608, "61166322c3ed88a7dd506f71d54766421da8f319148b08f97a706bd9cc16ae2d"),
        "X_test.npy": (627328, "195beb4e13f14df9113621fa9f282b723c4701cdb1e4551f356f0d4b48921f3b"),
        "y_test.npy": (1728, "c9b335c708d5ed248dd32aee0714f3c7cc5472fcf6b9e7931e67a39abcac053f"),
    },
    "mnist5k_1v9_size_80": {
        "X.npy": (2007168, "35df4e80c252841ccb5a24f205fa2b5f8be12a7519a92c2428b13ccf3e6bf7e3"),
        "y.npy": (5248, "d034fdee024d4047b573d598b72fc449f32ab49457630b3454f9c90ecac8ec9d"),
        "X_test.npy": (627328, "195beb4e13f14df9113621fa9f282b723c4701cdb1e4551f356f0d4b48921f3b"),
        "y_test.npy": (1728, "c9b335c708d5ed248dd32aee0714f3c7cc5472fcf6b9e7931e67a39abcac053f"),
    },
    "mnist5k_1v9_size_90": {
        "X.npy": (2258048, "28fe5fe65dc6085c949cf40437a210b85823d0f16d618a7282bdc56eed5518ed"),
        "y.npy": (5888, "52f39c48f012f21b29f847b8de3e4ab6003b7e03df817332d464a16ade756a2b"),
        "X_test.npy": (627328, "195beb4e13f14df9113621fa9f282b723c4701cdb1e4551f356f0d4b48921f3b"),
        "y_test.npy": (1728, "c9b335c708d5ed248dd32aee0714f3c7cc5472fcf6b9e7931e67a39abcac053f"),
    },
    "mnist5k_1v9_size_100": {
        "X.npy": (2508928, "7ad58b0f9131034929dfad79baa976f9b371675b6684fc2aa4ff6bdde8010ed0"),
        "y.npy": (6528, "804b9f2d8cefd565fde020d4a64001587f7c1a0de6376c9237da3deefdc8f50f"),
        "X_test.npy": (627328, "195beb4e13f14df9113621fa9f282b723c4701cdb1e4551f356f0d4b48921f3b"),
        "y_test.npy": (1728, "c9b335c708d5ed248dd32aee0714f3c7cc5472fcf6b9e7931e67a39abcac053f"),
    },
    "mnist5k_1v8_size_10": {
        "X.npy": (251008, "dd184aef0a71f348872392b639194dce82da1478bdfe8ee83709246be1721e64"),
        "y.npy": (768, "6e7df52cd975e94c535f48b35a1c43a508fe8818284febfd518e92dc3c5e208b"),
        "X_test.npy": (627328, "2be1fb213ee6a3626af11ffb3f6345e92df0ccdcef667f19fbbb26865b12e178"),
        "y_test.npy": (1728, "380e1ff3f240ccb20349bd982aa2f9b42417bc44cfb3274f507f84bc1fa7513b"),
    },
    "mnist5k_1v8_size_20": {
        "X.npy": (501888, "b729e0091cb4e39a4f0e63956ce931616f4ab5313f9069893694e5b45c9c98e2"),
        "y.npy": (1408, "2975de0520c969c408068aeeb47bffddff1ea63bf7dcb17b9b0ff1f3c4dd444d"),
        "X_test.npy": (627328, "2be1fb213ee6a3626af11ffb3f6345e92df0ccdcef667f19fbbb26865b12e178"),
        "y_test.npy": (1728, "380e1ff3f240ccb20349bd982aa2f9b42417bc44cfb3274f507f84bc1fa7513b"),
    },
    "mnist5k_1v8_size_30": {
        "X.npy": (752768, "00f0f59dfc222c3e6e4a92360462f68bc996c9592b71e114d58b2b4206970e41"),
        "y.npy": (2048, "ccd4ef23f356562a3b8e582afe326aeb30ce6ebcb6b4068f9124080b6ca2c4f8"),
        "X_test.npy": (627328, "2be1fb213ee6a3626af11ffb3f6345e92df0ccdcef667f19fbbb26865b12e178"),
        "y_test.npy": (1728, "380e1ff3f240ccb20349bd982aa2f9b42417bc44cfb3274f507f84bc1fa7513b"),
    },
    "mnist5k_1v8_size_40": {
        "X.npy": (1003648, "7f4277c36a0557fd3f3919d84409cf2eabc33cc68ba61aa1b78e2f1de1764731"),
        "y.npy": (2688, "deae659f9b15d9845de65c6a157d6d1d728a0c4c7fb7b45b5b521b9c8aa4ded7"),
        "X_test.npy": (627328, "2be1fb213ee6a3626af11ffb3f6345e92df0ccdcef667f19fbbb26865b12e178"),
        "y_test.npy": (1728, "380e1ff3f240ccb20349bd982aa2f9b42417bc44cfb3274f507f84bc1fa7513b"),
    },
    "mnist5k_1v8_size_50": {
        "X.npy": (1254528, "6e1afe2b03096c750e20994336ca60a5965de9bbd28303a43c55f34bd44aa35a"),
        "y.npy": (3328, "77558dd680cdc96cd45bb6a1eb03b62282c923eb7e9476053d7411c2846af3c8"),
        "X_test.npy": (627328, "2be1fb213ee6a3626af11ffb3f6345e92df0ccdcef667f19fbbb26865b12e178"),
        "y_test.npy": (1728, "380e1ff3f240ccb20349bd982aa2f9b42417bc44cfb3274f507f84bc1fa7513b"),
    },
    "mnist5k_1v8_size_60": {
        "X.npy": (1505408, "e73267523c366bf3a4a941c97fa192bb9658597a843d83e0922ad5e4814222c3"),
        "y.npy": (3968, "69b9d456d9f4ab6620393cd14946ff5ff713a2c2530db4b9194560078a2a4306"),
        "X_test.npy": (627328, "2be1fb213ee6a3626af11ffb3f6345e92df0ccdcef667f19fbbb26865b12e178"),
        "y_test.npy": (1728, "380e1ff3f240ccb20349bd982aa2f9b42417bc44cfb3274f507f84bc1fa7513b"),
    },
    "mnist5k_1v8_size_70": {
        "X.npy": (1756288, "53fc10e33f1b7623687cc0a6ce7aacf32627d6a28a638af1a4061598ebbab29e"),
        "y.npy": (4608, "771e7b201a0d6903d678f0a9aea23921684343126253d7c1a197e1e20e90c5fa"),
        "X_test.npy": (627328, "2be1fb213ee6a3626af11ffb3f6345e92df0ccdcef667f19fbbb26865b12e178"),
        "y_test.npy": (1728, "380e1ff3f240ccb20349bd982aa2f9b42417bc44cfb3274f507f84bc1fa7513b"),
    },
    "mnist5k_1v8_size_80": {
        "X.npy": (2007168, "a2a56f2ec876a1c06a7c978a9906745d8c414e75402831e03677bb092ac6acfa"),
        "y.npy": (5248, "cf68f73132d7a96914deeb51e117422ec8700ed82a19378679618b94fb051d6b"),
        "X_test.npy": (627328, "2be1fb213ee6a3626af11ffb3f6345e92df0ccdcef667f19fbbb26865b12e178"),
        "y_test.npy": (1728, "380e1ff3f240ccb20349bd982aa2f9b42417bc44cfb3274f507f84bc1fa7513b"),
    },
    "mnist5k_1v8_size_90": {
        "X.npy": (2258048, "6b72a2a8e4e935c85b260e2c553fbc021fd789ba68feebf9c6bcb15584abbaa6"),
        "y.npy": (5888, "d508a1db731b614746fc7d87303b42bcfd80cbee9ff9770f2eabbe950d007e83"),
        "X_test.npy": (627328, "2be1fb213ee6a3626af11ffb3f6345e92df0ccdcef667f19fbbb26865b12e178"),
        "y_test.npy": (1728, "380e1ff3f240ccb20349bd982aa2f9b42417bc44cfb3274f507f84bc1fa7513b"),
    },
    "mnist5k_1v8_size_100": {
        "X.npy": (2508928, "9fe84088d99e241104959c9f22b19b8e5beeaf32fd624b08703c38e80f0e5ef9"),
        "y.npy": (6528, "f8102b97df4e645cdac2461ab00594da42c3f20782a626a2e60f1b82da10ec68"),
        "X_test.npy": (627328, "2be1fb213ee6a3626af11ffb3f6345e92df0ccdcef667f19fbbb26865b12e178"),
        "y_test.npy": (1728, "380e1ff3f240ccb20349bd982aa2f9b42417bc44cfb3274f507f84bc1fa7513b"),
    },
}


def expected(name: str) -> dict | None:
    """{file: {"size", "sha256"}} of a fresh build of ``name``; None if it is not built offline."""
    files = PINNED.get(name)
    return None if files is None else {f: {"size": s, "sha256": h} for f, (s, h) in files.items()}
