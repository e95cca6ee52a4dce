//! wgtrain in the browser: the MNIST run the page drives ([`MnistRun`], plain async Rust that
//! runs natively too), and on wasm32 its JavaScript face, [`page::Session`].

use std::path::Path;

use wgtrain::data::{Dataset, DeviceDataset, parse_idx_pair};
use wgtrain::prelude::*;

/// The repository's MNIST slice (8,000 train and 2,000 test digits, see
/// `data/mnist-10k/README.md`), compiled into the module: the page fetches nothing else.
const TRAIN_IMAGES: &[u8] = include_bytes!("../../data/mnist-10k/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] = include_bytes!("../../data/mnist-10k/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] = include_bytes!("../../data/mnist-10k/t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../../data/mnist-10k/t10k-labels-idx1-ubyte.gz");

/// Pixels per digit.
pub const PIXELS: usize = 28 * 28;

/// The bundled train and test sets, the train set cut to its first `train_rows` rows if
/// given (pixels scale to [0, 1] as they are gathered on the GPU).
pub fn mnist(train_rows: Option<usize>) -> Result<(Dataset, Dataset)> {
    let pair = |images: &[u8], labels: &[u8], name: &str| {
        parse_idx_pair(
            (Path::new(&format!("{name}-images")), images.to_vec()),
            (Path::new(&format!("{name}-labels")), labels.to_vec()),
            10,
        )
    };
    let mut train = pair(TRAIN_IMAGES, TRAIN_LABELS, "train")?;
    if let Some(rows) = train_rows {
        train.split_off(rows)?;
    }
    Ok((train, pair(TEST_IMAGES, TEST_LABELS, "t10k")?))
}

/// `nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))` under
/// cross-entropy with Adam, on the bundled digits, resident on the GPU.
#[derive(Debug)]
pub struct MnistRun {
    trainer: Trainer,
    train: DeviceDataset,
    test: DeviceDataset,
    test_labels: Vec<f32>,
    epoch: usize,
}

impl MnistRun {
    /// Uploads the digits (the first `train_rows` of the train set, if given) and builds the
    /// model with `hidden` units, Adam at `lr`, batches of `batch`.
    pub fn new(
        gpu: &Gpu,
        hidden: usize,
        lr: f32,
        batch: usize,
        train_rows: Option<usize>,
    ) -> Result<Self> {
        let (train, test) = mnist(train_rows)?;
        let model = Sequential::new(PIXELS).linear(hidden).relu().linear(10);
        let config = TrainConfig {
            optimizer: Optimizer::adam(lr),
            batch_size: batch,
            ..TrainConfig::default()
        };
        Ok(Self {
            trainer: Trainer::for_model(gpu, &model, Loss::CrossEntropy, config)?,
            train: DeviceDataset::upload(gpu, &train)?,
            test: DeviceDataset::upload(gpu, &test)?,
            test_labels: test.targets,
            epoch: 0,
        })
    }

    /// The adapter's name and backend, as the page shows them.
    pub fn adapter(&self) -> String {
        let info = self.trainer.gpu().adapter_info();
        format!("{} ({:?})", info.name, info.backend)
    }

    /// Optimizer steps in one epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.trainer.epoch_batches(self.train.rows()).len()
    }

    /// One shuffled epoch; `on_step` sees each step's loss as it lands. Returns the mean loss.
    pub async fn fit_epoch(&mut self, on_step: &mut dyn FnMut(&StepLog)) -> Result<f64> {
        let loss = self
            .trainer
            .fit_epoch_async(&self.train, self.epoch, on_step)
            .await?;
        self.epoch += 1;
        Ok(loss)
    }

    /// The share of test digits whose most likely class is their label.
    pub async fn test_accuracy(&mut self) -> Result<f64> {
        let outputs = self.trainer.evaluate_async(&self.test).await?.outputs;
        Ok(ClassificationMetrics::from_outputs(&outputs, &self.test_labels, 10)?.accuracy)
    }

    /// Class probabilities (softmax of the logits) of one digit's 784 pixels in [0, 1].
    pub async fn probabilities(&mut self, pixels: &[f32]) -> Result<Vec<f32>> {
        let logits = self.trainer.predict_async(pixels).await?;
        let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits.iter().map(|l| (l - top).exp()).collect();
        let sum: f32 = exp.iter().sum();
        Ok(exp.iter().map(|e| e / sum).collect())
    }

    /// The model as a safetensors checkpoint, the same bytes `wgtrain train --save` writes:
    /// `wgtrain evaluate --model` and PyTorch's `load_state_dict` read it.
    pub async fn checkpoint(&self) -> Result<Vec<u8>> {
        self.trainer.to_bytes_async().await
    }
}

/// The page's JavaScript API: `await Session.open(hidden, lr, batch)`, then `fitEpoch`,
/// `testAccuracy`, `probabilities` and `checkpoint`, each a promise.
#[cfg(target_arch = "wasm32")]
pub mod page {
    use std::rc::Rc;

    use futures_intrusive::sync::LocalMutex;
    use js_sys::{Function, Promise};
    use wasm_bindgen::prelude::*;
    use wasm_bindgen_futures::future_to_promise;

    use super::MnistRun;

    /// One training run on the page's GPU. Calls queue: each waits for the one before it
    /// (a prediction asked for mid-epoch runs after the epoch).
    #[wasm_bindgen]
    #[derive(Debug)]
    pub struct Session {
        run: Rc<LocalMutex<MnistRun>>,
        adapter: String,
        steps_per_epoch: usize,
    }

    fn js_error(error: impl std::fmt::Display) -> JsValue {
        JsError::new(&error.to_string()).into()
    }

    #[wasm_bindgen]
    impl Session {
        /// Opens the browser's GPU through WebGPU and uploads the digits and the model.
        pub async fn open(hidden: usize, lr: f32, batch: usize) -> Result<Session, JsError> {
            let gpu = wgtrain::Gpu::new_async().await?;
            let run = MnistRun::new(&gpu, hidden, lr, batch, None)?;
            Ok(Session {
                adapter: run.adapter(),
                steps_per_epoch: run.steps_per_epoch(),
                run: Rc::new(LocalMutex::new(run, true)),
            })
        }

        /// The adapter's name and backend.
        #[wasm_bindgen(getter)]
        pub fn adapter(&self) -> String {
            self.adapter.clone()
        }

        /// Optimizer steps per epoch.
        #[wasm_bindgen(getter, js_name = stepsPerEpoch)]
        pub fn steps_per_epoch(&self) -> usize {
            self.steps_per_epoch
        }

        /// Trains one epoch, calling `onStep(step, loss)` as losses land; resolves to the
        /// epoch's mean loss.
        #[wasm_bindgen(js_name = fitEpoch)]
        pub fn fit_epoch(&self, on_step: Function) -> Promise {
            let run = Rc::clone(&self.run);
            future_to_promise(async move {
                let mut run = run.lock().await;
                let mut report = |log: &wgtrain::train::StepLog| {
                    // A throwing callback must not stop training: its error is the page's.
                    let _ = on_step.call2(
                        &JsValue::NULL,
                        &JsValue::from_f64(log.step as f64),
                        &JsValue::from_f64(f64::from(log.loss)),
                    );
                };
                let loss = run.fit_epoch(&mut report).await.map_err(js_error)?;
                Ok(JsValue::from_f64(loss))
            })
        }

        /// Resolves to the test accuracy in [0, 1].
        #[wasm_bindgen(js_name = testAccuracy)]
        pub fn test_accuracy(&self) -> Promise {
            let run = Rc::clone(&self.run);
            future_to_promise(async move {
                let mut run = run.lock().await;
                let accuracy = run.test_accuracy().await.map_err(js_error)?;
                Ok(JsValue::from_f64(accuracy))
            })
        }

        /// Resolves to the ten class probabilities of 784 pixels in [0, 1] (a Float32Array).
        pub fn probabilities(&self, pixels: Vec<f32>) -> Promise {
            let run = Rc::clone(&self.run);
            future_to_promise(async move {
                let mut run = run.lock().await;
                let probabilities = run.probabilities(&pixels).await.map_err(js_error)?;
                Ok(js_sys::Float32Array::from(&probabilities[..]).into())
            })
        }

        /// Resolves to the checkpoint's safetensors bytes (a Uint8Array).
        pub fn checkpoint(&self) -> Promise {
            let run = Rc::clone(&self.run);
            future_to_promise(async move {
                let run = run.lock().await;
                let bytes = run.checkpoint().await.map_err(js_error)?;
                Ok(js_sys::Uint8Array::from(&bytes[..]).into())
            })
        }
    }
}
