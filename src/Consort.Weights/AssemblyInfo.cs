namespace Consort.Weights;
