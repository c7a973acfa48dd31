namespace Consort.Weights.Tests;
